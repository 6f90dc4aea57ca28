using Osprey.Evaluation;
using Osprey.Losses;
using Osprey.Models;
using Osprey.Models.Building;
using Osprey.Models.Heads;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>Test models that end in YOLOv10's head: YOLOv8 blocks (Conv, C2f, SPPF, Upsample, Concat), then v10Detect.</summary>
internal static class V10Models
{
    /// <summary>yolov8.yaml's layout at scale n, head v10Detect: its inputs have 64, 128, 256 channels (as yolov10n's).</summary>
    public static string NanoYaml(int nc = 80) => ModelConfig.Load("yolov8n.yaml").Text
        .Replace("[[15, 18, 21], 1, Detect, [nc]]", "[[15, 18, 21], 1, v10Detect, [nc]]", StringComparison.Ordinal)
        .Replace("nc: 80", $"nc: {nc}", StringComparison.Ordinal);

    /// <summary>The tiny v8 layout (channels 8…64, head inputs 16, 32, 64) ending in v10Detect.</summary>
    public static string TinyYaml(int nc = 3) => TestModels.TinyYaml(nc)
        .Replace("[[15, 18, 21], 1, Detect, [nc]]", "[[15, 18, 21], 1, v10Detect, [nc]]", StringComparison.Ordinal);

    public static DetectionModel Tiny(int nc = 3) => new(ModelConfig.Parse(TinyYaml(nc), "tiny-v10.yaml"));

    public static DetectionModel Nano(int nc = 80) => new(ModelConfig.Parse(NanoYaml(nc), "yolov10-test.yaml", "n"));

    /// <summary>Spreads the class scores (the untrained prior puts them all near 2.6e-4, close enough for the top-k's order
    /// to turn on rounding): the one-to-one class outputs' weights × 20.</summary>
    public static void SpreadScores(DetectionModel model)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (_, value) in model.state_dict().Where(p => p.Key.Contains("one2one_cv3.", StringComparison.Ordinal)
                     && p.Key.EndsWith(".2.weight", StringComparison.Ordinal)))
            value.mul_(20);
    }

    /// <summary>
    /// Rows (b, k, 6) against another computation's (ONNX Runtime, the fused model): the score columns (sorted descending in both) within 1e-4; each of our
    /// rows has a row of theirs with the same class, its box within 1e-4 (relative to max(1, |x|)) and score within 1e-4,
    /// unless its score ties (±1e-5) with the k-th (where an equal anchor may take the last place instead).
    /// </summary>
    public static void AssertSameRows(Tensor ours, Tensor theirs)
    {
        Assert.Equal(ours.shape, theirs.shape);
        var scoreGap = (ours.select(2, 4) - theirs.select(2, 4)).abs().max().item<float>();
        Assert.True(scoreGap < 1e-4, $"scores differ by {scoreGap}");
        for (long b = 0; b < ours.shape[0]; b++)
        {
            float[] a = ours[b].data<float>().ToArray(), t = theirs[b].data<float>().ToArray();
            int k = a.Length / 6;
            float last = a[6 * (k - 1) + 4];
            var used = new bool[k];
            for (int i = 0; i < k; i++)
            {
                int match = Enumerable.Range(0, k).FirstOrDefault(j => !used[j] && t[6 * j + 5] == a[6 * i + 5]
                    && Math.Abs(t[6 * j + 4] - a[6 * i + 4]) < 1e-4
                    && Enumerable.Range(0, 4).All(c => Math.Abs(t[6 * j + c] - a[6 * i + c]) / Math.Max(1, Math.Abs(a[6 * i + c])) < 1e-4), -1);
                if (match >= 0) used[match] = true;
                else Assert.True(Math.Abs(a[6 * i + 4] - last) < 1e-5, $"image {b}, row {i} ({string.Join(", ", a.Skip(6 * i).Take(6))}) has no match");
            }
        }
    }
}

/// <summary>YOLOv10's head: structure, keys, initialisation, the two branches, detached features, the top-k.</summary>
public class V10DetectTests
{
    [Fact]
    public void HeadRowParametersAndKeysAreUltralytics()
    {
        using var model = V10Models.Nano();
        var head = Assert.IsType<V10Detect>(model.Head);
        Assert.Equal(22, model.LayerCount - 1);
        Assert.Equal("v10Detect", model.Summary()[22].Module);
        Assert.Equal("[80, [64, 128, 256]]", model.Summary()[22].Arguments);
        // v10Detect(nc 80, ch [64, 128, 256]): c2 = max(16, 64 / 4, 4·16) = 64, c3 = max(64, min(80, 100)) = 80.
        // Per level of x channels (Conv = conv weights + BN's 2·c_out):
        //   box   Conv(x, 64, 3) 576x + 128; Conv(64, 64, 3) 36864 + 128; Conv2d(64, 64, 1) 4096 + 64      → 576x + 41280
        //   class Conv(x, x, 3, g=x) 9x + 2x; Conv(x, 80, 1) 80x + 160; Conv(80, 80, 3, g=80) 720 + 160;
        //         Conv(80, 80, 1) 6400 + 160; Conv2d(80, 80, 1) 6400 + 80                                → 91x + 14080
        //   → 667x + 55360: x = 64 → 98048, 128 → 140736, 256 → 226112; Σ 464896 per branch set;
        //   one-to-many + one-to-one = 929792, plus DFL's 16 = 929808.
        Assert.Equal(929_808, model.Summary()[22].Parameters);

        var state = model.state_dict();
        string[] expected =
        {
            "model.22.one2one_cv2.0.0.conv.weight:64,64,3,3", "model.22.one2one_cv2.2.0.conv.weight:64,256,3,3",
            "model.22.one2one_cv2.1.2.weight:64,64,1,1", "model.22.one2one_cv2.1.2.bias:64",
            "model.22.one2one_cv3.0.0.0.conv.weight:64,1,3,3", "model.22.one2one_cv3.0.0.0.bn.running_var:64",
            "model.22.one2one_cv3.0.0.1.conv.weight:80,64,1,1", "model.22.one2one_cv3.2.0.0.conv.weight:256,1,3,3",
            "model.22.one2one_cv3.2.0.1.conv.weight:80,256,1,1", "model.22.one2one_cv3.1.1.0.conv.weight:80,1,3,3",
            "model.22.one2one_cv3.1.1.1.conv.weight:80,80,1,1", "model.22.one2one_cv3.0.2.weight:80,80,1,1",
            "model.22.cv3.0.0.0.conv.weight:64,1,3,3", "model.22.cv3.2.2.bias:80", "model.22.cv2.0.0.conv.weight:64,64,3,3",
            "model.22.dfl.conv.weight:1,16,1,1",
        };
        Assert.Equal(expected, expected.Select(e => e.Split(':')[0]).Select(k => $"{k}:{string.Join(",", state[k].shape)}"));
        // Ultralytics' module order: cv2, cv3, dfl, one2one_cv2, one2one_cv3; the one-to-one keys mirror the others'.
        var headKeys = state.Keys.Where(k => k.StartsWith("model.22.", StringComparison.Ordinal)).Select(k => k["model.22.".Length..]).ToList();
        var groups = headKeys.Select(k => k.Split('.')[0]).Distinct().ToArray();
        Assert.Equal(new[] { "cv2", "cv3", "dfl", "one2one_cv2", "one2one_cv3" }, groups);
        Assert.Equal(headKeys.Where(k => k.StartsWith("cv", StringComparison.Ordinal)).Select(k => "one2one_" + k),
            headKeys.Where(k => k.StartsWith("one2one_", StringComparison.Ordinal)));
        Assert.True(head.EndToEnd);
    }

    [Fact]
    public void OneToOneBranchStartsAsACopyWithTheBiasPriorOnBoth()
    {
        using var model = V10Models.Tiny(nc: 3);
        var state = model.state_dict();
        int copies = 0;
        foreach (var (key, value) in state.Where(p => p.Key.StartsWith("model.22.cv", StringComparison.Ordinal)))
        {
            Assert.True(value.SameAs(state[key.Replace("model.22.cv", "model.22.one2one_cv", StringComparison.Ordinal)]), key);
            copies++;
        }
        // Per level: box 2 Convs × 6 tensors (conv weight, BN weight, bias, running mean, var, batches) + the output's
        // weight and bias = 14; class 4 Convs × 6 + 2 = 26; three levels: 120.
        Assert.Equal(120, copies);
        foreach (string branch in new[] { "cv", "one2one_cv" })
            for (int level = 0; level < 3; level++)
            {
                double stride = 8 << level;
                Assert.All(state[$"model.22.{branch}2.{level}.2.bias"].data<float>().ToArray(), b => Assert.Equal(1f, b));
                Assert.All(state[$"model.22.{branch}3.{level}.2.bias"].data<float>().ToArray(),
                    b => Assert.Equal(Math.Log(5.0 / 3 / Math.Pow(640 / stride, 2)), b, 5));
            }
    }

    [Fact]
    public void TrainingMapsAreOneToManyThenOneToOneAndInferenceIsTopKRows()
    {
        using var model = V10Models.Tiny(nc: 3);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(5);
        var images = rand(2, 3, 64, 96);
        model.eval();
        var maps = model.ForwardFeatures(images);               // no = 64 + 3 = 67, at /8, /16, /32, twice
        long[][] shapes = { new long[] { 2, 67, 8, 12 }, new long[] { 2, 67, 4, 6 }, new long[] { 2, 67, 2, 3 } };
        Assert.Equal(shapes.Concat(shapes), maps.Select(m => m.shape));
        Assert.Equal(new[] { 8f, 16f, 32f }, model.Strides);

        // The one-to-one branch is a copy at construction: both branches give the same maps until trained.
        for (int i = 0; i < 3; i++) Assert.True(maps[i].SameAs(maps[i + 3]));
        // Perturb the one-to-one branch: only the last three maps change.
        foreach (var (key, value) in model.state_dict().Where(p => p.Key.StartsWith("model.22.one2one_cv3.", StringComparison.Ordinal) && p.Key.EndsWith(".2.bias", StringComparison.Ordinal)))
            value.add_(0.5);
        var perturbed = model.ForwardFeatures(images);
        for (int i = 0; i < 3; i++) Assert.True(perturbed[i].SameAs(maps[i]));
        for (int i = 3; i < 6; i++) Assert.False(perturbed[i].SameAs(maps[i]));

        // Inference: the one-to-one maps decoded (xyxy) and reduced by the top-k, k = min(300, A = 96 + 24 + 6).
        var output = model.Predict(images);
        Assert.Equal(new long[] { 2, 126, 6 }, output.shape);
        var expected = V10Detect.TopK(DecodedXyxy(model.Head, perturbed.Skip(3).ToArray()), 300);
        Assert.True(output.narrow(2, 4, 2).SameAs(expected.narrow(2, 4, 2)));          // scores and classes exactly
        Assert.True(allclose(output.narrow(2, 0, 4), expected.narrow(2, 0, 4), rtol: 1e-5, atol: 1e-4));
    }

    // An independent decode of one-to-one maps: DFL expectation by hand, xyxy = anchor ∓ distances, × stride; sigmoid.
    static Tensor DecodedXyxy(DetectionHead head, Tensor[] maps)
    {
        var rows = new List<Tensor>();
        for (int level = 0; level < maps.Length; level++)
        {
            var m = maps[level];
            long b = m.shape[0], h = m.shape[2], w = m.shape[3];
            var flat = m.view(b, m.shape[1], h * w);                                         // (b, no, hw)
            var bins = flat.narrow(1, 0, 64).view(b, 4, 16, h * w).softmax(2);                // (b, 4, 16, hw)
            var dist = (bins * arange(16, dtype: float32).view(1, 1, 16, 1)).sum(2);          // (b, 4, hw)
            var xs = arange(w, dtype: float32).repeat(h) + 0.5f;                              // (hw)
            var ys = arange(h, dtype: float32).repeat_interleave(w) + 0.5f;                   // (hw)
            float s = head.Strides[level];
            var box = stack(new[] { xs - dist.select(1, 0), ys - dist.select(1, 1), xs + dist.select(1, 2), ys + dist.select(1, 3) }, 1) * s; // (b, 4, hw)
            rows.Add(cat(new[] { box, flat.narrow(1, 64, m.shape[1] - 64).sigmoid() }, 1));
        }
        return cat(rows.ToArray(), 2);                                                        // (b, 4 + nc, A)
    }

    [Fact]
    public void OneToOneLossDoesNotReachTheBackbone()
    {
        using var model = V10Models.Tiny(nc: 3);
        model.train();
        using var scope = NewDisposeScope();
        manual_seed(9);
        var targets = new DetectionTargets(tensor(new float[] { 0, 1 }), tensor(new float[] { 2, 0 }),
            tensor(new float[,] { { .4f, .5f, .3f, .4f }, { .6f, .3f, .2f, .2f } }));
        var options = new DetectionLossOptions { NumClasses = 3, Strides = model.Strides.ToArray() };
        var backbone = model.named_parameters().Single(p => p.name == "model.0.conv.weight").parameter;
        var neck = model.named_parameters().Single(p => p.name == "model.21.cv2.conv.weight").parameter;
        var oneToOne = model.named_parameters().Single(p => p.name == "model.22.one2one_cv3.0.0.0.conv.weight").parameter;
        var oneToMany = model.named_parameters().Single(p => p.name == "model.22.cv3.0.0.0.conv.weight").parameter;

        var maps = model.ForwardFeatures(rand(2, 3, 64, 64));
        using (var o2o = new DetectionLoss(options with { TopK = 1 }).Compute(maps.Skip(3).ToArray(), targets)) o2o.Total.backward();
        Assert.True(backbone.grad is null || backbone.grad.abs().sum().item<float>() == 0);
        Assert.True(neck.grad is null || neck.grad.abs().sum().item<float>() == 0);
        Assert.True(oneToMany.grad is null || oneToMany.grad.abs().sum().item<float>() == 0);
        Assert.True(oneToOne.grad!.abs().sum().item<float>() > 0);

        model.zero_grad();
        maps = model.ForwardFeatures(rand(2, 3, 64, 64));
        using (var o2m = new DetectionLoss(options).Compute(maps.Take(3).ToArray(), targets)) o2m.Total.backward();
        Assert.True(backbone.grad!.abs().sum().item<float>() > 0);
        Assert.True(oneToOne.grad is null || oneToOne.grad.abs().sum().item<float>() == 0);
    }

    [Fact]
    public void FusedHeadComputesTheOneToOneBranchOnlyAndPredictsAlike()
    {
        using var model = V10Models.Tiny(nc: 3);
        TestModels.RandomiseBatchNorms(model, seed: 6);
        V10Models.SpreadScores(model);
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(2);
        var images = rand(1, 3, 64, 64);
        var unfusedMaps = model.ForwardFeatures(images);
        var before = model.Predict(images);                                   // (1, 84, 6)
        model.Fuse();
        var fusedMaps = model.ForwardFeatures(images);                        // the one-to-one maps only
        Assert.Equal(3, fusedMaps.Length);
        for (int i = 0; i < 3; i++) Assert.True(allclose(fusedMaps[i], unfusedMaps[i + 3], rtol: 1e-4, atol: 1e-4));
        var after = model.Predict(images);
        Assert.Equal(new long[] { 1, 84, 6 }, after.shape);
        V10Models.AssertSameRows(after, before);
    }

    /// <summary>
    /// Ultralytics' postprocess on a hand-made case (A = 6 anchors, 3 classes, k = 3):
    /// best class score per anchor a0 .20, a1 .90, a2 .80, a3 .70, a4 .50, a5 .45 → anchors a1, a2, a3;
    /// their 9 (anchor, class) scores, best three: a1·c0 .90, a1·c1 .85, a2·c2 .80 (a3's .70 is left out, a1 comes twice).
    /// </summary>
    internal static (Tensor Decoded, float[] Expected) HandCase()
    {
        float[,] scores =
        {
            { .10f, .20f, .05f }, { .90f, .85f, .01f }, { .30f, .02f, .80f },
            { .15f, .70f, .60f }, { .05f, .01f, .50f }, { .40f, .45f, .03f },
        };
        var rows = new float[7, 6];                                 // (4 + nc, A)
        for (int a = 0; a < 6; a++)
        {
            for (int j = 0; j < 4; j++) rows[j, a] = 10 * a + j;    // anchor a's box: 10a, 10a + 1, 10a + 2, 10a + 3
            for (int c = 0; c < 3; c++) rows[4 + c, a] = scores[a, c];
        }
        float[] expected =
        {
            10, 11, 12, 13, .90f, 0,
            10, 11, 12, 13, .85f, 1,
            20, 21, 22, 23, .80f, 2,
        };
        return (tensor(rows).unsqueeze(0), expected);
    }

    [Fact]
    public void TopKSelectsAnchorsThenAnchorClassPairs()
    {
        using var scope = NewDisposeScope();
        var (decoded, expected) = HandCase();
        var top = V10Detect.TopK(decoded, maxDetections: 3);
        Assert.Equal(new long[] { 1, 3, 6 }, top.shape);
        Assert.Equal(expected, top.data<float>().ToArray());
        // k = min(max_det, A): with max_det 300 all six anchors come back, best pair first.
        var all = V10Detect.TopK(cat(new[] { decoded, decoded.flip(2) }, 0), 300);
        Assert.Equal(new long[] { 2, 6, 6 }, all.shape);
        Assert.Equal(new float[] { .90f, .85f, .80f, .70f, .60f, .50f }, all[0].select(1, 4).data<float>().ToArray());
        Assert.Equal(all[0].data<float>().ToArray(), all[1].data<float>().ToArray());   // order of anchors does not matter
    }

    [Fact]
    public void PostprocessKeepsRowsAboveConfThenTheFirstMaxDetThenTheClasses()
    {
        using var scope = NewDisposeScope();
        var rows = tensor(new float[]
        {
            1, 1, 2, 2, .9f, 0,
            3, 3, 4, 4, .6f, 2,
            5, 5, 6, 6, .25f, 1,     // not above conf 0.25
            7, 7, 8, 8, .1f, 0,
        }).view(1, 4, 6);
        using var model = V10Models.Tiny(nc: 3);
        var kept = model.Head.Postprocess(rows, new NmsOptions());
        Assert.Equal(new float[] { 1, 1, 2, 2, .9f, 0, 3, 3, 4, 4, .6f, 2 }, kept.Single().data<float>().ToArray());
        kept = model.Head.Postprocess(rows, new NmsOptions { ConfidenceThreshold = 0.001f, MaxDetections = 3 });
        Assert.Equal(3, kept[0].shape[0]);
        Assert.Equal(new float[] { .9f, .6f, .25f }, kept[0].select(1, 4).data<float>().ToArray());
        // Ultralytics filters the classes after max_det: of the first two rows only the class-2 one stays.
        kept = model.Head.Postprocess(rows, new NmsOptions { ConfidenceThreshold = 0.001f, MaxDetections = 2, Classes = new[] { 2, 1 } });
        Assert.Equal(new float[] { 3, 3, 4, 4, .6f, 2 }, kept[0].data<float>().ToArray());
        // No IoU suppression: two identical boxes both stay (NMS would keep one).
        var twins = tensor(new float[] { 0, 0, 9, 9, .8f, 1, 0, 0, 9, 9, .7f, 1 }).view(1, 2, 6);
        Assert.Equal(2, model.Head.Postprocess(twins, new NmsOptions()).Single().shape[0]);
    }
}

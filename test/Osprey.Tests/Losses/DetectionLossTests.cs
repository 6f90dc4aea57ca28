using Osprey.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Losses;

/// <summary>32×32 input: feature maps 4×4 (s8), 2×2 (s16), 1×1 (s32) → 21 anchors; nc 2 → 66 channels.</summary>
public class DetectionLossTests
{
    private const int NumClasses = 2;
    private const int Channels = NumClasses + 64;
    private static readonly int[] Sizes = { 4, 2, 1 };

    private static Tensor[] Features(long batch, Func<long, long, Tensor> make)
        => Sizes.Select(s => make(batch, s)).ToArray();

    private static Tensor[] RandomFeatures(long batch, int seed)
    {
        var generator = new TorchSharp.torch.Generator((ulong)seed);
        return Features(batch, (b, s) => randn(new[] { b, Channels, s, s }, generator: generator).requires_grad_(true));
    }

    /// <summary>Every side's distribution peaked (logit 20) at bin 1 → expected distance ≈ 1 grid cell.</summary>
    private static Tensor[] PeakedFeatures(long batch)
        => Features(batch, (b, s) =>
        {
            var f = zeros(b, Channels, s, s);
            for (int side = 0; side < 4; side++) f[TensorIndex.Colon, side * 16 + 1] = tensor(20f);
            return f;
        });

    /// <summary>Two 16×16 px objects in image 0 centred on s8 anchors (12,12) and (20,12); one in image 1.</summary>
    private static DetectionTargets Targets() => new(
        tensor(new float[] { 0, 1, 0 }),
        tensor(new float[] { 1, 0, 0 }),
        tensor(new float[] { 0.375f, 0.375f, 0.5f, 0.5f, 0.5f, 0.5f, 0.25f, 0.75f, 0.625f, 0.375f, 0.5f, 0.5f }).view(3, 4));

    private static DetectionTargets NoTargets() => new(zeros(0), zeros(0), zeros(0, 4));

    [Fact]
    public void PreprocessPadsPerImageAndScalesToPixelXyxy()
    {
        using var scope = NewDisposeScope();
        var gt = DetectionLoss.Preprocess(Targets(), 2, 32, 32, CPU);            // (2, 2, 5)
        Assert.Equal(new long[] { 2, 2, 5 }, gt.shape);
        // image 0: cls 1, centre (12,12) size 16 → (4,4,20,20); cls 0, centre (20,12) → (12,4,28,20).
        // image 1: cls 0, centre (16,16) size (8,24) → (12,4,20,28); then a zero padding row.
        Assert.Equal(new float[] { 1, 4, 4, 20, 20, 0, 12, 4, 28, 20, 0, 12, 4, 20, 28, 0, 0, 0, 0, 0 },
            gt.data<float>().ToArray());
    }

    [Fact]
    public void PreprocessKeepsEachImagesRowsInOrderWhateverTheBatchOrderAndScalesWidthAndHeight()
    {
        using var scope = NewDisposeScope();
        // rows of images 1, 0, 1, 0 (image 2 has none), on a 64×32 input
        var targets = new DetectionTargets(
            tensor(new float[] { 1, 0, 1, 0 }),
            tensor(new float[] { 2, 1, 0, 3 }),
            tensor(new float[] { 0.5f, 0.5f, 0.25f, 0.5f, 0.25f, 0.25f, 0.5f, 0.5f, 0.75f, 0.5f, 0.5f, 1f, 0.5f, 0.75f, 0.25f, 0.25f }).view(4, 4));
        var gt = DetectionLoss.Preprocess(targets, 3, 64, 32, CPU);              // (3, 2, 5)
        Assert.Equal(new long[] { 3, 2, 5 }, gt.shape);
        Assert.Equal(new float[]
        {
            1, 0, 0, 32, 16, 3, 24, 20, 40, 28,   // image 0: its rows in the order given (cls 1, then cls 3)
            2, 24, 8, 40, 24, 0, 32, 0, 64, 32,   // image 1: cls 2, then cls 0
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0,         // image 2: padding
        }, gt.data<float>().ToArray());
    }

    [Fact]
    public void LossIsFinitePositiveAndGradientFlows()
    {
        using var scope = NewDisposeScope();
        var features = RandomFeatures(2, seed: 7);
        var loss = new DetectionLoss(new DetectionLossOptions { NumClasses = NumClasses });
        using var result = loss.Compute(features, Targets());
        var (box, cls, dfl) = result.ItemValues();
        Assert.True(box > 0 && cls > 0 && dfl > 0, $"{box} {cls} {dfl}");
        Assert.False(result.Items.requires_grad);
        // total = Σ items · batch size (2).
        Assert.Equal((box + cls + dfl) * 2, result.Total.item<float>(), 3);
        result.Total.backward();
        foreach (var f in features)
        {
            Assert.True(f.grad is not null && isfinite(f.grad).all().item<bool>());
        }
        // Box bins and class logits both receive gradient.
        Assert.True(features[0].grad!.narrow(1, 0, 64).abs().sum().item<float>() > 0);
        Assert.True(features[0].grad!.narrow(1, 64, 2).abs().sum().item<float>() > 0);
    }

    [Fact]
    public void WithoutTargetsOnlyTheClassTermRemains()
    {
        using var scope = NewDisposeScope();
        // Class 0 logits 0, class 1 logits 1, box logits 0. No targets → box = dfl = 0 and
        // cls = Σ BCE(x, 0) / max(0, 1) = Σ ln(1 + eˣ) = 21·(ln 2 + ln(1 + e)) = 21·(0.693147 + 1.313262) = 42.134589;
        // × gain 0.5 = 21.067295; total = 21.067295 × batch 1.
        var features = Features(1, (b, s) =>
        {
            var f = zeros(b, Channels, s, s);
            f[TensorIndex.Colon, 65] = tensor(1f);
            return f;
        });
        using var result = new DetectionLoss(new DetectionLossOptions { NumClasses = NumClasses }).Compute(features, NoTargets());
        var (box, cls, dfl) = result.ItemValues();
        Assert.Equal(0f, box);
        Assert.Equal(0f, dfl);
        Assert.Equal(21.067295f, cls, 4);
        Assert.Equal(21.067295f, result.Total.item<float>(), 4);
    }

    [Fact]
    public void GainsScaleTheirItems()
    {
        using var scope = NewDisposeScope();
        var features = RandomFeatures(2, seed: 3);
        using var standard = new DetectionLoss(new DetectionLossOptions { NumClasses = NumClasses }).Compute(features, Targets());
        using var unit = new DetectionLoss(new DetectionLossOptions { NumClasses = NumClasses, BoxGain = 1, ClsGain = 1, DflGain = 1 })
            .Compute(features, Targets());
        var s = standard.ItemValues();
        var u = unit.ItemValues();
        Assert.Equal(u.Box * 7.5f, s.Box, 4);
        Assert.Equal(u.Cls * 0.5f, s.Cls, 4);
        Assert.Equal(u.Dfl * 1.5f, s.Dfl, 4);
    }

    [Fact]
    public void NormaliserOverrideDividesEveryTerm()
    {
        using var scope = NewDisposeScope();
        // Peaked box bins make the s8 anchors at (1.5,1.5) and (2.5,1.5) predict their gt exactly (IoU 1), so the
        // local Σ target scores ≥ 1 and max(·, 1) is the sum itself: doubling it must halve all three terms.
        var features = PeakedFeatures(2);
        float localSum = 0;
        var local = new DetectionLoss(new DetectionLossOptions
        {
            NumClasses = NumClasses,
            GlobalSum = s => { localSum = s.item<float>(); return s; },
        });
        var doubled = new DetectionLoss(new DetectionLossOptions { NumClasses = NumClasses, GlobalSum = s => s * 2 });
        using var a = local.Compute(features, Targets());
        using var b = doubled.Compute(features, Targets());
        Assert.True(localSum >= 1, $"local Σ target scores {localSum}");
        var (boxA, clsA, dflA) = a.ItemValues();
        var (boxB, clsB, dflB) = b.ItemValues();
        Assert.True(boxA > 0 && dflA > 0);
        Assert.Equal(boxA / 2, boxB, 5);
        Assert.Equal(clsA / 2, clsB, 5);
        Assert.Equal(dflA / 2, dflB, 5);
        Assert.Equal(a.Total.item<float>() / 2, b.Total.item<float>(), 4);
    }

    [Fact]
    public void ShardedBatchWithGlobalNormaliserSumsToSingleProcess()
    {
        using var scope = NewDisposeScope();
        // Two "ranks" each see one image; with the normaliser all-reduced (sum of both local sums) the items add up
        // to the two-image single-process items.
        var features = RandomFeatures(2, seed: 11);
        var options = new DetectionLossOptions { NumClasses = NumClasses };
        using var full = new DetectionLoss(options).Compute(features, Targets());
        var shards = new[] { 0L, 1L }.Select(i => features.Select(f => f.narrow(0, i, 1)).ToArray()).ToArray();
        var shardTargets = new[]
        {
            new DetectionTargets(tensor(new float[] { 0, 0 }), tensor(new float[] { 1, 0 }), Targets().Boxes.index_select(0, tensor(new long[] { 0, 2 }))),
            new DetectionTargets(tensor(new float[] { 0 }), tensor(new float[] { 0 }), Targets().Boxes.narrow(0, 1, 1)),
        };
        var localSums = new float[2];
        for (int r = 0; r < 2; r++)
        {
            int rank = r;
            using var probe = new DetectionLoss(options with { GlobalSum = s => { localSums[rank] = s.item<float>(); return s; } })
                .Compute(shards[r], shardTargets[r]);
        }
        var globalSum = localSums.Sum();
        var items = zeros(3);
        for (int r = 0; r < 2; r++)
        {
            using var part = new DetectionLoss(options with { GlobalSum = s => full_like(s, globalSum) })
                .Compute(shards[r], shardTargets[r]);
            items += part.Items;
        }
        Assert.True(allclose(items, full.Items, rtol: 1e-4, atol: 1e-6), $"{items.str()} vs {full.Items.str()}");
    }
}

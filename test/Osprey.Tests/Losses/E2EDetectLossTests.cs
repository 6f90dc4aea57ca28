using Osprey.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Losses;

/// <summary>
/// YOLOv10's loss on hand-made maps (32×32 input: 4×4, 2×2, 1×1 maps, 21 anchors; nc 2 → 66 channels), six maps:
/// one-to-many then one-to-one.
/// </summary>
public class E2EDetectLossTests
{
    private const int NumClasses = 2;
    private const int Channels = NumClasses + 64;
    private static readonly int[] Sizes = { 4, 2, 1 };

    private static Tensor[] RandomMaps(long batch, int seed)
    {
        var generator = new TorchSharp.torch.Generator((ulong)seed);
        return Sizes.Concat(Sizes).Select(s => randn(new[] { batch, Channels, s, s }, generator: generator).requires_grad_(true)).ToArray();
    }

    /// <summary>Three objects (two in image 0, one in image 1), 8 to 24 px, near the s8 anchors.</summary>
    private static DetectionTargets Targets() => new(
        tensor(new float[] { 0, 0, 1 }),
        tensor(new float[] { 1, 0, 0 }),
        tensor(new float[] { 0.375f, 0.375f, 0.5f, 0.5f, 0.625f, 0.375f, 0.25f, 0.5f, 0.5f, 0.5f, 0.25f, 0.75f }).view(3, 4));

    [Fact]
    public void IsTheSumOfTheV8LossWithTopK10OnOneToManyAndTopK1OnOneToOne()
    {
        using var scope = NewDisposeScope();
        var maps = RandomMaps(2, seed: 5);
        var options = new DetectionLossOptions { NumClasses = NumClasses };
        var e2e = new E2EDetectLoss(options);
        Assert.Equal((10, 1), (e2e.OneToMany.Options.TopK, e2e.OneToOne.Options.TopK));
        using var result = e2e.Compute(maps, Targets());

        // The reference: two v8 losses computed on their own, each × batch 2, summed (Ultralytics' loss_one2many[0] +
        // loss_one2one[0], and the items [1] + [1]).
        using var many = new DetectionLoss(options with { TopK = 10 }).Compute(maps.Take(3).ToArray(), Targets());
        using var one = new DetectionLoss(options with { TopK = 1 }).Compute(maps.Skip(3).ToArray(), Targets());
        Assert.Equal(many.Total.item<float>() + one.Total.item<float>(), result.Total.item<float>(), 4);
        var expectedItems = many.Items.data<float>().Zip(one.Items.data<float>(), (a, b) => a + b).ToArray();
        Assert.Equal(expectedItems, result.Items.data<float>().ToArray());
        var (box, cls, dfl) = result.ItemValues();
        Assert.Equal((box + cls + dfl) * 2, result.Total.item<float>(), 3);

        // Top-k 1 is what the one-to-one branch is assigned with: top-k 10 on the same maps gives another loss.
        using var oneWithTen = new DetectionLoss(options with { TopK = 10 }).Compute(maps.Skip(3).ToArray(), Targets());
        Assert.NotEqual(oneWithTen.Items.data<float>().ToArray(), one.Items.data<float>().ToArray());

        // Gradients reach both halves of the maps.
        result.Total.backward();
        Assert.All(maps, m => Assert.True(m.grad!.abs().sum().item<float>() > 0));
    }

    [Fact]
    public void EachBranchIsNormalisedByItsOwnGlobalTargetScoreSum()
    {
        using var scope = NewDisposeScope();
        // Two "ranks" of one image each: each branch's normaliser is the sum over the ranks of that branch's local
        // target-score sums; then the ranks' items add up to the one-process items.
        var maps = RandomMaps(2, seed: 8);
        var options = new DetectionLossOptions { NumClasses = NumClasses };
        using var full = new E2EDetectLoss(options).Compute(maps, Targets());
        var shards = new[] { 0L, 1L }.Select(i => maps.Select(m => m.narrow(0, i, 1)).ToArray()).ToArray();
        var shardTargets = new[]
        {
            new DetectionTargets(tensor(new float[] { 0, 0 }), tensor(new float[] { 1, 0 }), Targets().Boxes.narrow(0, 0, 2)),
            new DetectionTargets(tensor(new float[] { 0 }), tensor(new float[] { 0 }), Targets().Boxes.narrow(0, 2, 1)),
        };
        var local = new List<float>[] { new(), new() };                     // per rank: one-to-many's sum, then one-to-one's
        for (int r = 0; r < 2; r++)
        {
            int rank = r;
            using var probe = new E2EDetectLoss(options with { GlobalSum = s => { local[rank].Add(s.item<float>()); return s; } })
                .Compute(shards[r], shardTargets[r]);
        }
        Assert.All(local, sums => Assert.Equal(2, sums.Count));
        Assert.NotEqual(local[0][0], local[0][1]);                           // the branches' sums differ (top-k 10 vs 1)
        var global = new[] { local[0][0] + local[1][0], local[0][1] + local[1][1] };
        var items = zeros(3);
        for (int r = 0; r < 2; r++)
        {
            int call = 0;
            using var part = new E2EDetectLoss(options with { GlobalSum = s => full_like(s, global[call++]) }).Compute(shards[r], shardTargets[r]);
            items += part.Items;
        }
        Assert.True(allclose(items, full.Items, rtol: 1e-4, atol: 1e-6), $"{items.str()} vs {full.Items.str()}");

        // A rank without a batch joins both sums.
        int calls = 0;
        new E2EDetectLoss(options with { GlobalSum = s => { calls++; return s; } }).WithoutBatch(CPU);
        Assert.Equal(2, calls);
    }

    [Fact]
    public void TakesOneToManyThenOneToOneMapsOfEveryLevel()
    {
        using var scope = NewDisposeScope();
        var loss = new E2EDetectLoss(new DetectionLossOptions { NumClasses = NumClasses });
        var error = Assert.Throws<ArgumentException>(() => loss.Compute(RandomMaps(1, seed: 1).Take(3).ToArray(), Targets()));
        Assert.Contains("takes 6 maps", error.Message);
    }
}

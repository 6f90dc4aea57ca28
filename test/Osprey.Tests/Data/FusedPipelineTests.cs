using Osprey.Data;

namespace Osprey.Tests.Data;

/// <summary>The training pipeline with the fused colour pass and the separable warp gives the bytes of the OpenCV calls they replace.</summary>
public class FusedPipelineTests
{
    public static TheoryData<string> Recipes => new() { "default", "flips", "mixup", "rotate", "no-mosaic" };

    [Theory]
    [MemberData(nameof(Recipes))]
    public void FusedColourAndSeparableWarpEqualTheOpenCvCalls(string recipe)
    {
        if (!HsvPlanes.Supported) return;
        var augment = recipe switch
        {
            "flips" => AugmentOptions.Default with { FlipUD = 0.5 },
            "mixup" => AugmentOptions.Default with { Mixup = 0.5 },
            "rotate" => AugmentOptions.Default with { Degrees = 10, Shear = 2 },
            "no-mosaic" => AugmentOptions.Default with { Mosaic = 0 },
            _ => AugmentOptions.Default,
        };
        var data = DetectionDataset.Load(Path.Combine(DataTestFiles.SharedData, "coco8", "coco8.yaml"), DatasetSplit.Train,
            new DatasetLoadOptions(DataTestFiles.NewTempDir()));
        const int size = 160;
        var store = new RamImageStore(data.Images, size, true, 2);
        var fused = new SamplePipeline(data.Images, store, size, augment, 11);
        var plain = new SamplePipeline(data.Images, store, size, augment, 11) { FusedColour = false, SeparableWarp = false };
        Assert.True(fused.FusedColour && fused.SeparableWarp);
        for (var epoch = 0; epoch < 6; epoch++)
            for (var index = 0; index < data.Count; index++)
            {
                var (a, sa) = fused.Process(index, epoch);
                var (b, sb) = plain.Process(index, epoch);
                Assert.True(a.AsSpan().SequenceEqual(b), $"{recipe}: sample {index} of epoch {epoch} differs");
                Assert.Equal(sb.Boxes, sa.Boxes);
                Assert.Equal(sb.Classes, sa.Classes);
            }
    }
}

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

public class MosaicBufferTests
{
    private static List<byte[]> Images(DetectionDataset data, LoaderOptions options, int epoch)
    {
        using var loader = DataLoader.ForTraining(data, options);
        var result = new List<byte[]>();
        foreach (var batch in loader.Epoch(epoch))
            using (batch)
            {
                var bytes = batch.Images.bytes.ToArray();
                var per = bytes.Length / batch.Size;
                for (var i = 0; i < batch.Size; i++) result.Add(bytes[(i * per)..((i + 1) * per)]);
            }
        return result;
    }

    [Fact]
    public void WindowedPartnersKeepSamplesIndependentOfWorkersBatchAndCache()
    {
        var root = DataTestFiles.NewTempDir();
        var data = DetectionDataset.Load(DataTestFiles.PlantDataset(root, 13), DatasetSplit.Train);
        foreach (var epoch in new[] { 0, 2 })
        {
            var reference = Images(data, new LoaderOptions(ImageSize: 64, BatchSize: 4, Workers: 1, Seed: 3, MosaicBuffer: 4), epoch);
            foreach (var options in new[]
                     {
                         new LoaderOptions(ImageSize: 64, BatchSize: 3, Workers: 3, Seed: 3, MosaicBuffer: 4),
                         new LoaderOptions(ImageSize: 64, BatchSize: 13, Workers: 2, Seed: 3, MosaicBuffer: 4, Cache: ImageCacheMode.Ram),
                         new LoaderOptions(ImageSize: 64, BatchSize: 2, Workers: 2, Seed: 3, MosaicBuffer: 4, Cache: ImageCacheMode.Disk, CacheDirectory: DataTestFiles.NewTempDir()),
                     })
            {
                var other = Images(data, options, epoch);
                for (var i = 0; i < reference.Count; i++)
                    Assert.True(reference[i].AsSpan().SequenceEqual(other[i]), $"epoch {epoch} sample {i} differs with {options}");
            }
            var uniform = Images(data, new LoaderOptions(ImageSize: 64, BatchSize: 4, Workers: 1, Seed: 3, MosaicBuffer: 0), epoch);
            Assert.Contains(Enumerable.Range(0, reference.Count), i => !reference[i].AsSpan().SequenceEqual(uniform[i]));
        }
    }

    private static Dictionary<int, byte[]> ByIndex(DetectionDataset data, LoaderOptions options, int epoch)
    {
        using var loader = DataLoader.ForTraining(data, options);
        var result = new Dictionary<int, byte[]>();
        foreach (var batch in loader.Epoch(epoch))
            using (batch)
            {
                var bytes = batch.Images.bytes.ToArray();
                var per = bytes.Length / batch.Size;
                for (var i = 0; i < batch.Size; i++) result[batch.Infos[i].DatasetIndex] = bytes[(i * per)..((i + 1) * per)];
            }
        return result;
    }

    [Fact]
    public void WindowedPartnersAreTheSameOnEveryRankLayout()
    {
        var root = DataTestFiles.NewTempDir();
        var data = DetectionDataset.Load(DataTestFiles.PlantDataset(root, 13), DatasetSplit.Train);
        var single = ByIndex(data, new LoaderOptions(ImageSize: 64, BatchSize: 4, Workers: 2, Seed: 8, MosaicBuffer: 5), epoch: 1);
        foreach (var rank in new[] { 0, 1, 2 })
            foreach (var (index, image) in ByIndex(data, new LoaderOptions(ImageSize: 64, BatchSize: 2, Workers: 1, Seed: 8, Rank: rank, WorldSize: 3, MosaicBuffer: 5), epoch: 1))
                Assert.True(single[index].AsSpan().SequenceEqual(image), $"index {index} differs on rank {rank} of 3");
    }

    [Fact]
    public void TheRecentImageCacheDecodesAboutOneImagePerSample()
    {
        var root = DataTestFiles.NewTempDir();
        var data = DetectionDataset.Load(DataTestFiles.PlantDataset(root, 40), DatasetSplit.Train);
        using var loader = DataLoader.ForTraining(data, new LoaderOptions(ImageSize: 64, BatchSize: 4, Workers: 1, MosaicBuffer: 16));
        var samples = 0;
        for (var epoch = 0; epoch < 3; epoch++)
            foreach (var batch in loader.Epoch(epoch))
                using (batch) samples += batch.Size;
        // 4 per sample without it; Ultralytics' buffer: the sample's own image, rarely a partner
        Assert.True(loader.Decoded <= 1.3 * samples, $"{loader.Decoded} decodes for {samples} samples");
    }
}

using Osprey.Data;

namespace Osprey.Tests.Data;

/// <summary>The training pipeline with the fused colour pass and the separable warp gives the bytes of the OpenCV calls they replace.</summary>
public class FusedPipelineTests
{
    public static TheoryData<string> Recipes => new() { "default", "flips", "mixup", "rotate", "no-mosaic" };

    [SkippableTheory]
    [MemberData(nameof(Recipes))]
    public void FusedColourAndSeparableWarpEqualTheOpenCvCalls(string recipe)
    {
        Skip.IfNot(HsvPlanes.Supported, HsvPlanesTests.NoAvx2);
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
                if (batch.Size == 0) continue;                   // a rank's empty share of the epoch's last global batch
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
                if (batch.Size == 0) continue;                   // a rank's empty share of the epoch's last global batch
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
    public void AnImageEvictedFromTheRecentCacheStaysIntactWhileItsViewIsInUse()
    {
        // six same-sized noise images (no resize at imgsz 64): a freed image's memory is what the next decode gets
        var root = DataTestFiles.NewTempDir();
        foreach (var split in new[] { "train", "val" })
        {
            Directory.CreateDirectory(Path.Combine(root, "images", split));
            Directory.CreateDirectory(Path.Combine(root, "labels", split));
            for (var i = 0; i < 6; i++)
            {
                using var noise = new OpenCvSharp.Mat(48, 64, OpenCvSharp.MatType.CV_8UC3);
                OpenCvSharp.Cv2.Randu(noise, new OpenCvSharp.Scalar(0, 0, 0), new OpenCvSharp.Scalar(256, 256, 256));
                OpenCvSharp.Cv2.ImWrite(Path.Combine(root, "images", split, $"n{i}.png"), noise);
                File.WriteAllText(Path.Combine(root, "labels", split, $"n{i}.txt"), "0 0.5 0.5 0.2 0.2\n");
            }
        }
        File.WriteAllText(Path.Combine(root, "noise.yaml"), "path: .\ntrain: images/train\nval: images/val\nnames: [a]\n");
        var data = DetectionDataset.Load(Path.Combine(root, "noise.yaml"), DatasetSplit.Train);
        var files = new FileImageStore(data.Images, 64, augment: true);
        using var store = new RecentImageStore(files, capacity: 1);
        using var first = store.Load(0);
        var expected = Pixels(first.Image);
        // evict image 0, then decode more (same-sized) images: freed pixels would be reused and overwritten
        for (var i = 1; i < 6; i++)
            using (store.Load(i)) { }
        Assert.Equal(6, store.Decoded);
        Assert.Equal(0, store.Hits);
        using var fresh = files.Load(0);
        Assert.Equal(Pixels(fresh.Image), expected);
        Assert.Equal(expected, Pixels(first.Image));
        using (var again = store.Load(0)) Assert.Equal(expected, Pixels(again.Image)); // decoded again after eviction
        Assert.Equal(7, store.Decoded);
    }

    private static byte[] Pixels(OpenCvSharp.Mat image)
    {
        int width = image.Width, height = image.Height;
        var bytes = new byte[width * height * 3];
        for (var y = 0; y < height; y++)
            System.Runtime.InteropServices.Marshal.Copy(image.Ptr(y), bytes, y * width * 3, width * 3);
        return bytes;
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

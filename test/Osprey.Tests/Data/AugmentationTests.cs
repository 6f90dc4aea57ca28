using Osprey.Data;

namespace Osprey.Tests.Data;

public class AugmentationTests
{
    private static DetectionDataset Planted(int count, out string root)
    {
        root = DataTestFiles.NewTempDir();
        var yaml = DataTestFiles.PlantDataset(root, count);
        return DetectionDataset.Load(yaml, DatasetSplit.Train);
    }

    private static List<(byte[] Image, float[] Labels)> Samples(DetectionDataset data, LoaderOptions options, int epoch)
    {
        using var loader = DataLoader.ForTraining(data, options);
        var result = new List<(byte[], float[])>();
        foreach (var batch in loader.Epoch(epoch))
        {
            using (batch)
            {
                var bytes = batch.Images.bytes.ToArray();
                var per = bytes.Length / batch.Size;
                var bi = batch.BatchIndex.data<long>().ToArray();
                var cls = batch.Classes.data<float>().ToArray();
                var boxes = batch.Boxes.data<float>().ToArray();
                for (var i = 0; i < batch.Size; i++)
                {
                    var labels = new List<float>();
                    for (var n = 0; n < bi.Length; n++)
                        if (bi[n] == i) labels.AddRange([cls[n], boxes[4 * n], boxes[4 * n + 1], boxes[4 * n + 2], boxes[4 * n + 3]]);
                    result.Add((bytes[(i * per)..((i + 1) * per)], labels.ToArray()));
                }
            }
        }
        return result;
    }

    [Fact]
    public void SamplesAreBitExactAcrossWorkersBatchSizesAndCaches()
    {
        var data = Planted(11, out _);
        var reference = Samples(data, new LoaderOptions(ImageSize: 96, BatchSize: 4, Workers: 1, Seed: 5), epoch: 3);
        Assert.Equal(11, reference.Count);
        foreach (var options in new[]
                 {
                     new LoaderOptions(ImageSize: 96, BatchSize: 4, Workers: 3, Seed: 5),
                     new LoaderOptions(ImageSize: 96, BatchSize: 3, Workers: 2, Seed: 5),
                     new LoaderOptions(ImageSize: 96, BatchSize: 11, Workers: 3, Seed: 5, PrefetchBatches: 1),
                     new LoaderOptions(ImageSize: 96, BatchSize: 5, Workers: 2, Seed: 5, Cache: ImageCacheMode.Ram),
                     new LoaderOptions(ImageSize: 96, BatchSize: 2, Workers: 2, Seed: 5, Cache: ImageCacheMode.Disk, CacheDirectory: DataTestFiles.NewTempDir()),
                 })
        {
            var other = Samples(data, options, epoch: 3);
            Assert.Equal(reference.Count, other.Count);
            for (var i = 0; i < reference.Count; i++)
            {
                Assert.True(reference[i].Image.AsSpan().SequenceEqual(other[i].Image), $"sample {i} differs with {options}");
                Assert.Equal(reference[i].Labels, other[i].Labels);
            }
        }
        var nextEpoch = Samples(data, new LoaderOptions(ImageSize: 96, BatchSize: 4, Workers: 2, Seed: 5), epoch: 4);
        Assert.False(reference[0].Image.AsSpan().SequenceEqual(nextEpoch[0].Image));
    }

    [Fact]
    public void ASampleIsTheSameOnEveryRankLayout()
    {
        var data = Planted(7, out _);
        var single = new SamplePipeline(data.Images, new FileImageStore(data.Images, 64, true), 64, AugmentOptions.Default, 9);
        var (a, sa) = single.Process(5, 2);
        var (b, sb) = single.Process(5, 2);
        Assert.Equal(a, b);
        Assert.Equal(sa.Boxes, sb.Boxes);
    }

    public static TheoryData<string> Recipes => new() { "mosaic", "mosaic-canvas", "letterbox-affine", "flips", "validation", "mixup" };

    [Theory]
    [MemberData(nameof(Recipes))]
    public void BoxesFollowThePixelsThroughEveryTransform(string recipe)
    {
        var data = Planted(10, out _);
        var augment = recipe switch
        {
            "mosaic" => AugmentOptions.Default with { HsvH = 0, HsvS = 0, HsvV = 0 },
            "mosaic-canvas" => AugmentOptions.Default with { HsvH = 0, HsvS = 0, HsvV = 0, Perspective = 1e-12 },
            "letterbox-affine" => AugmentOptions.Default with { Mosaic = 0, HsvH = 0, HsvS = 0, HsvV = 0 },
            "flips" => AugmentOptions.Default with { HsvH = 0, HsvS = 0, HsvV = 0, FlipUD = 0.5 },
            "mixup" => AugmentOptions.Default with { HsvH = 0, HsvS = 0, HsvV = 0, Mixup = 1.0 },
            _ => null,
        };
        const int s = 128;
        var store = new FileImageStore(data.Images, s, augment is not null);
        var pipeline = new SamplePipeline(data.Images, store, s, augment, 17);
        var checkedBoxes = 0;
        for (var epoch = 0; epoch < 3; epoch++)
            for (var i = 0; i < data.Count; i++)
            {
                var (chw, sample) = pipeline.Process(i, epoch);
                Assert.Equal(sample.Classes.Length * 4, sample.Boxes.Length);
                for (var k = 0; k < sample.Classes.Length; k++)
                {
                    float cx = sample.Boxes[4 * k] * s, cy = sample.Boxes[4 * k + 1] * s, w = sample.Boxes[4 * k + 2] * s, h = sample.Boxes[4 * k + 3] * s;
                    Assert.InRange(cx - w / 2, -0.01f, s + 0.01f);
                    Assert.InRange(cx + w / 2, -0.01f, s + 0.01f);
                    if (w < 8 || h < 8) continue;
                    var color = DataTestFiles.ClassColor(sample.Classes[k]);
                    var (r, g, b) = ((byte)color.Val2, (byte)color.Val1, (byte)color.Val0);
                    int x1 = (int)Math.Ceiling(cx - w / 2 + 2), x2 = (int)Math.Floor(cx + w / 2 - 2);
                    int y1 = (int)Math.Ceiling(cy - h / 2 + 2), y2 = (int)Math.Floor(cy + h / 2 - 2);
                    var total = 0;
                    var matching = 0;
                    for (var y = y1; y < y2; y++)
                        for (var x = x1; x < x2; x++)
                        {
                            total++;
                            int p = y * s + x;
                            var pr = chw[p]; var pg = chw[s * s + p]; var pb = chw[2 * s * s + p];
                            if (recipe == "mixup")
                            {
                                // blended with another image: the class colour still dominates its channel
                                if ((r == 255 ? pr : g == 255 ? pg : pb) > 60) matching++;
                            }
                            else if (Math.Abs(pr - r) < 8 && Math.Abs(pg - g) < 8 && Math.Abs(pb - b) < 8) matching++;
                        }
                    Assert.True(total == 0 || matching >= total * (recipe == "mixup" ? 0.6 : 0.97),
                        $"{recipe} epoch {epoch} sample {i} box {k}: {matching}/{total} pixels of the class colour");
                    checkedBoxes++;
                }
            }
        Assert.True(checkedBoxes > 10, $"only {checkedBoxes} boxes checked");
    }

    [Fact]
    public void EveryBoxOfTheOutputHasItsColourOnlyInsideABox()
    {
        var data = Planted(10, out _);
        const int s = 128;
        var augment = AugmentOptions.Default with { HsvH = 0, HsvS = 0, HsvV = 0 };
        var pipeline = new SamplePipeline(data.Images, new FileImageStore(data.Images, s, true), s, augment, 23);
        for (var i = 0; i < data.Count; i++)
        {
            var (chw, sample) = pipeline.Process(i, 1);
            // every pure class-coloured pixel lies inside (or within 2 px of) a box of that class, or of a box dropped as too small
            var outside = 0;
            var coloured = 0;
            for (var y = 0; y < s; y++)
                for (var x = 0; x < s; x++)
                {
                    int p = y * s + x;
                    var rgb = (chw[p], chw[s * s + p], chw[2 * s * s + p]);
                    var cls = rgb switch { (0, 255, 0) => 0, (0, 0, 255) => 1, (255, 0, 0) => 2, _ => -1 };
                    if (cls < 0) continue;
                    coloured++;
                    var inside = false;
                    for (var k = 0; k < sample.Classes.Length && !inside; k++)
                    {
                        if (sample.Classes[k] != cls) continue;
                        float cx = sample.Boxes[4 * k] * s, cy = sample.Boxes[4 * k + 1] * s, w = sample.Boxes[4 * k + 2] * s, h = sample.Boxes[4 * k + 3] * s;
                        inside = x >= cx - w / 2 - 2 && x <= cx + w / 2 + 2 && y >= cy - h / 2 - 2 && y <= cy + h / 2 + 2;
                    }
                    if (!inside) outside++;
                }
            Assert.True(outside <= Math.Max(30, coloured / 50), $"sample {i}: {outside} of {coloured} coloured pixels outside every box");
        }
    }

    [Fact]
    public void ValidationKeepsTheOriginalGeometry()
    {
        var data = Planted(3, out _);
        var val = DetectionDataset.Load(data.Config, DatasetSplit.Val);
        using var loader = DataLoader.ForValidation(val, new LoaderOptions(ImageSize: 64, BatchSize: 2, Workers: 1));
        var batch = Assert.Single(loader.Epoch(0));
        using (batch)
        {
            Assert.Equal(new long[] { 2, 3, 64, 64 }, batch.Images.shape);
            var info = batch.Infos[0]; // v0: 100x60 → 64x39 (ceil, as load_image), pad 12 top
            Assert.Equal((60, 100), (info.OriginalHeight, info.OriginalWidth));
            Assert.Equal(0.64f, info.RatioX, 3);
            Assert.Equal(12f, info.PadY);
            var box = batch.Boxes[0].data<float>().ToArray();
            var (x1, y1, x2, y2) = info.ToOriginal((box[0] - box[2] / 2) * 64, (box[1] - box[3] / 2) * 64, (box[0] + box[2] / 2) * 64, (box[1] + box[3] / 2) * 64);
            Assert.Equal(35f, x1, 0.6f);
            Assert.Equal(18f, y1, 0.6f);
            Assert.Equal(65f, x2, 0.6f);
            Assert.Equal(42f, y2, 0.6f);
        }
    }

    [Fact]
    public void CloseMosaicTurnsMosaicOffForTheLastEpochs()
    {
        var a = AugmentOptions.Default;
        Assert.True(a.MosaicActive(89, 100));
        Assert.False(a.MosaicActive(90, 100));
        Assert.True(a.MosaicActive(5, 0));
    }
}

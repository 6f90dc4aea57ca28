using Osprey.Data;
using static TorchSharp.torch;

namespace Osprey.Tests.Data;

/// <summary>
/// The training loader under data parallel yields ceil(n / global batch) batches on every rank; a rank whose share of
/// the last global batch is empty gets an empty batch (0 images, 0 boxes) on the pixel and on the device path, and the
/// ranks' batches together are the one-process batches.
/// </summary>
public class EmptyShareTests
{
    static DetectionDataset Coco8() => DetectionDataset.Load(Path.Combine(DataTestFiles.SharedData, "coco8", "coco8.yaml"), DatasetSplit.Train,
        new DatasetLoadOptions(DataTestFiles.NewTempDir()));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ARankWithNoShareOfTheLastBatchGetsAnEmptyBatch(bool deviceAugment)
    {
        var data = Coco8();
        // coco8's 4 training images, 3 ranks × rank batch 1: global batches of 3 and 1; ranks 1 and 2 have no share of the last.
        var options = new LoaderOptions(ImageSize: 64, BatchSize: 1, Workers: 1, Seed: 4, WorldSize: 3, Epochs: 2, MosaicBuffer: 4,
            DeviceAugment: deviceAugment);
        var oneProcess = Sizes(data, options with { BatchSize = 3, WorldSize = 1 }).Select(s => s.Images).ToList();
        Assert.Equal([3, 1], oneProcess);
        var ranks = Enumerable.Range(0, 3).Select(r => Sizes(data, options with { Rank = r })).ToList();
        Assert.All(ranks, r => Assert.Equal(2, r.Count));
        Assert.Equal((1, 1), (ranks[0][1].Images, ranks[0][1].Global));
        Assert.Equal((0, 0, 1), (ranks[2][1].Images, ranks[2][1].Boxes, ranks[2][1].Global));
        for (int k = 0; k < 2; k++) Assert.Equal(oneProcess[k], ranks.Sum(r => r[k].Images));
    }

    static List<(int Images, long Boxes, int Global)> Sizes(DetectionDataset data, LoaderOptions options)
    {
        using var loader = DataLoader.ForTraining(data, options);
        var sizes = new List<(int, long, int)>();
        foreach (var batch in loader.Epoch(1))
            using (batch)
            {
                using var images = batch.ImagesAsFloat(CPU);
                Assert.Equal(new long[] { batch.Size, 3, 64, 64 }, images.shape);
                sizes.Add((batch.Size, batch.BatchIndex.shape[0], batch.GlobalSize));
            }
        return sizes;
    }
}

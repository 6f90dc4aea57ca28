using Osprey.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Data;

/// <summary>
/// The data path to the device: pinned collation falls back cleanly where pinning is impossible, and the one-ahead device
/// prefetch hands out the very batches of the loader, with the device copies the step uses.
/// </summary>
public class DevicePathTests
{
    // Generated here (not ../shared), so that the GPU machine, which gets the repository only, runs these too.
    static DetectionDataset Shapes()
    {
        string dir = DataTestFiles.NewTempDir();
        string yaml = ShapesDataset.EnsureGenerated(new ShapesOptions(ImageSize: 96, TrainImages: 8, ValImages: 2, Seed: 7), dir);
        return DetectionDataset.Load(yaml, DatasetSplit.Train, new DatasetLoadOptions(dir));
    }

    static readonly LoaderOptions Options = new(ImageSize: 64, BatchSize: 3, Workers: 2, Seed: 5, Epochs: 3);

    static (byte[] Images, long[] Index, float[] Classes, float[] Boxes) Contents(Batch b) =>
        (b.Images.bytes.ToArray(), b.BatchIndex.data<long>().ToArray(), b.Classes.data<float>().ToArray(), b.Boxes.data<float>().ToArray());

    static void AssertSame((byte[] Images, long[] Index, float[] Classes, float[] Boxes) a, (byte[] Images, long[] Index, float[] Classes, float[] Boxes) b, string what)
    {
        Assert.True(a.Images.AsSpan().SequenceEqual(b.Images), $"{what}: images differ");
        Assert.Equal(a.Index, b.Index);
        Assert.Equal(a.Classes, b.Classes);
        Assert.Equal(a.Boxes, b.Boxes);
    }

    [Fact]
    public void PinnedLoaderFallsBackWithoutCudaAndGivesTheSameBytes()
    {
        var data = Shapes();
        using var plain = DataLoader.ForTraining(data, Options);
        using var pinning = DataLoader.ForTraining(data, Options with { PinMemory = true });
        Assert.True(pinning.PinsMemory, "a pinning loader starts out pinning");
        var expected = plain.Epoch(1).Select(b => { using (b) return Contents(b); }).ToList();
        var pinnedPinned = new List<bool>();
        var got = pinning.Epoch(1).Select(b => { using (b) { pinnedPinned.Add(b.IsPinned); return Contents(b); } }).ToList();

        Assert.Equal(expected.Count, got.Count);
        for (int i = 0; i < got.Count; i++) AssertSame(expected[i], got[i], $"batch {i}");
        if (torch.cuda.is_available())
        {
            Assert.Null(pinning.PinMemoryError);
            Assert.All(pinnedPinned, Assert.True);
        }
        else
        {
            // This libtorch cannot pin: the first batch says why, and every batch is ordinary memory.
            Assert.False(pinning.PinsMemory);
            Assert.Contains("pin_memory failed", pinning.PinMemoryError);
            Assert.All(pinnedPinned, Assert.False);
        }
        Assert.Null(plain.PinMemoryError);
    }

    public static TheoryData<string> Devices() => torch.cuda.is_available() ? new() { "cpu", "cuda:0" } : new() { "cpu" };

    [Theory]
    [MemberData(nameof(Devices))]
    public void PrefetchIsOneBatchAheadAndHandsOutTheLoadersBatches(string deviceName)
    {
        var device = torch.device(deviceName);
        var data = Shapes();
        using var loader = DataLoader.ForTraining(data, Options with { PinMemory = device.type == DeviceType.CUDA });
        var expected = loader.Epoch(0).Select(b => { using (b) return Contents(b); }).ToList();

        // A source that records how far it has been read when each batch is handed out.
        int produced = 0;
        IEnumerable<Batch> Counted() { foreach (var b in loader.Epoch(0)) { produced++; yield return b; } }
        int i = 0;
        foreach (var batch in DevicePrefetch.Ahead(Counted(), device))
        {
            using (batch)
            {
                Assert.Equal(Math.Min(i + 2, expected.Count), produced);     // batch i + 1 is already in flight
                Assert.Equal(device.type, batch.CopiedTo?.type);
                AssertSame(expected[i], Contents(batch), $"batch {i}");
                // The step reads the device copies: the same values as converting the host tensors.
                using var fromCopy = batch.ImagesAsFloat(device).cpu();
                using var reference = batch.Images.to(ScalarType.Float32).div(255f);
                Assert.True(fromCopy.eq(reference).all().item<bool>());
                using var index = batch.BatchIndexOn(device).cpu();
                using var boxes = batch.BoxesOn(device).cpu();
                Assert.Equal(batch.BatchIndex.data<long>().ToArray(), index.data<long>().ToArray());
                Assert.Equal(batch.Boxes.data<float>().ToArray(), boxes.data<float>().ToArray());
                Assert.NotEqual(batch.Boxes.Handle, batch.BoxesOn(device).Handle);   // a copy the batch owns
            }
            i++;
        }
        Assert.Equal(expected.Count, i);
    }
}

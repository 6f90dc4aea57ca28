using Osprey.Data;

namespace Osprey.Tests.Data;

public class SamplerTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(10)]
    [InlineData(13)]
    [InlineData(25)]
    public void EveryGlobalBatchIsTheSameSetOfSamplesAtEveryWorldSize(int size)
    {
        // Global batch k is positions [k·B, (k+1)·B) of the epoch's shuffle, the last partial one included, whatever the
        // world: W ranks × rank batch B / W chunks of the unpadded strided shares.
        var order = DistributedSampler.Order(size, shuffle: true, seed: 3, epoch: 2);
        foreach (int batch in new[] { 12, 60 })
            for (var world = 1; world <= 6; world++)
            {
                if (batch % world != 0) continue;
                int rankBatch = batch / world;
                var samplers = Enumerable.Range(0, world).Select(r => new DistributedSampler(size, r, world, shuffle: true, seed: 3)).ToList();
                var shares = samplers.Select(s => s.Indices(2)).ToList();
                Assert.Equal(Enumerable.Range(0, size), shares.SelectMany(s => s).Order());       // each sample once, no padding
                int batches = (size + batch - 1) / batch;
                Assert.All(samplers, s => Assert.Equal(batches, s.Batches(rankBatch)));
                for (int k = 0; k < batches; k++)
                {
                    var global = shares.SelectMany(s => s.Skip(k * rankBatch).Take(rankBatch)).Order();
                    Assert.Equal(order.Skip(k * batch).Take(batch).Order(), global);
                    Assert.Equal(Math.Min(batch, size - k * batch), samplers[0].GlobalBatchSize(rankBatch, k));
                }
            }
    }

    [Fact]
    public void ShuffleDependsOnSeedAndEpochOnly()
    {
        var a = new DistributedSampler(50, 1, 3, true, 7);
        a.SetEpoch(4);
        Assert.Equal(a.Indices(), new DistributedSampler(50, 1, 3, true, 7).Indices(4));
        Assert.NotEqual(a.Indices(4), a.Indices(5));
        Assert.NotEqual(a.Indices(4), new DistributedSampler(50, 1, 3, true, 8).Indices(4));
        Assert.Equal(Enumerable.Range(0, 10), new DistributedSampler(10, 0, 1, shuffle: false).Indices(0));
    }

    [Fact]
    public void NoPaddingARankMayHaveNoShareOfTheLastBatch()
    {
        // 5 samples on 3 ranks, no shuffle, rank batch 1: batches {0,1,2}, {3,4}; rank 2's share of the last is empty
        // (PyTorch's DistributedSampler would pad rank 2 with sample 0, a sample one process does not see twice).
        Assert.Equal([0, 3], new DistributedSampler(5, 0, 3, false).Indices(0));
        Assert.Equal([1, 4], new DistributedSampler(5, 1, 3, false).Indices(0));
        Assert.Equal([2], new DistributedSampler(5, 2, 3, false).Indices(0));
        Assert.Equal(2, new DistributedSampler(5, 2, 3, false).Batches(1));
        Assert.Empty(new DistributedSampler(2, 2, 3, false).Indices(0));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(11)]
    public void ValidationSeesEachSampleExactlyOnce(int size)
    {
        for (var world = 1; world <= 5; world++)
        {
            var all = Enumerable.Range(0, world).SelectMany(r => new ValidationSampler(size, r, world).Indices(0)).ToList();
            Assert.Equal(Enumerable.Range(0, size), all.Order());
        }
    }
}

using Osprey.Data;

namespace Osprey.Tests.Data;

public class SamplerTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(10)]
    [InlineData(13)]
    public void DistributedSharesAreEqualAndCoverEverything(int size)
    {
        for (var world = 1; world <= 5; world++)
        {
            var shares = Enumerable.Range(0, world).Select(r => new DistributedSampler(size, r, world, shuffle: true, seed: 3).Indices(2)).ToList();
            Assert.All(shares, s => Assert.Equal((size + world - 1) / world, s.Count));
            var union = shares.SelectMany(s => s).ToHashSet();
            Assert.Equal(size, union.Count);
            Assert.All(union, i => Assert.InRange(i, 0, size - 1));
            Assert.Equal(shares.Sum(s => s.Count) - size, world * ((size + world - 1) / world) - size); // only padding repeats
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
    public void PaddingRepeatsFromTheStartLikePyTorch()
    {
        // 5 samples on 3 ranks, no shuffle: order 0..4 padded with 0 → rank0 {0,3}, rank1 {1,4}, rank2 {2,0}
        Assert.Equal([0, 3], new DistributedSampler(5, 0, 3, false).Indices(0));
        Assert.Equal([1, 4], new DistributedSampler(5, 1, 3, false).Indices(0));
        Assert.Equal([2, 0], new DistributedSampler(5, 2, 3, false).Indices(0));
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

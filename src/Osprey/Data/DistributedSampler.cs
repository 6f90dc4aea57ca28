namespace Osprey.Data;

/// <summary>Which dataset indices a rank visits in an epoch.</summary>
public interface ISampler
{
    /// <summary>Indices of this rank for <paramref name="epoch"/>, in visiting order.</summary>
    IReadOnlyList<int> Indices(int epoch);

    /// <summary>Number of indices per epoch for this rank.</summary>
    int Count { get; }
}

/// <summary>
/// The training sampler: an optional shuffle from (seed, epoch), rank r taking every world-th position of it from r,
/// without padding. Chunked into rank batches of b = global batch / world, global batch k is then exactly positions
/// [k·B, (k+1)·B) of the shuffle at every world size, the last partial one included (PyTorch's <c>DistributedSampler</c>
/// pads to a multiple of the world by repeating from the start, which makes the epoch's samples depend on the world):
/// the epoch has ceil(n / B) global batches on every rank (<see cref="Batches"/>), and in the last one a rank may have
/// fewer samples than another, or none (elastic training, docs/distributed.md).
/// </summary>
public sealed class DistributedSampler : ISampler
{
    private readonly int _size;

    /// <summary>This rank.</summary>
    public int Rank { get; }

    /// <summary>Number of ranks.</summary>
    public int WorldSize { get; }

    /// <summary>Shuffle each epoch.</summary>
    public bool Shuffle { get; }

    /// <summary>Shuffle seed.</summary>
    public long Seed { get; }

    /// <summary>Epoch used by <see cref="Indices()"/>.</summary>
    public int Epoch { get; private set; }

    /// <summary>Creates a sampler over <paramref name="datasetSize"/> samples.</summary>
    public DistributedSampler(int datasetSize, int rank = 0, int worldSize = 1, bool shuffle = true, long seed = 0)
    {
        if (datasetSize <= 0) throw new ArgumentOutOfRangeException(nameof(datasetSize));
        if (worldSize <= 0 || rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} of world {worldSize}");
        (_size, Rank, WorldSize, Shuffle, Seed) = (datasetSize, rank, worldSize, shuffle, seed);
    }

    /// <inheritdoc/>
    public int Count => _size > Rank ? (_size - Rank + WorldSize - 1) / WorldSize : 0;

    /// <summary>Samples per epoch over all ranks (the dataset's size).</summary>
    public int Size => _size;

    /// <summary>Global batches per epoch for rank batches of <paramref name="rankBatch"/>: ceil(n / (rankBatch · world)),
    /// the same on every rank (a rank whose share of the last one is empty still takes part in it).</summary>
    public int Batches(int rankBatch) => (_size + rankBatch * WorldSize - 1) / (rankBatch * WorldSize);

    /// <summary>Samples in global batch <paramref name="index"/> over all ranks (the last one may be partial).</summary>
    public int GlobalBatchSize(int rankBatch, int index) => Math.Clamp(_size - index * rankBatch * WorldSize, 0, rankBatch * WorldSize);

    /// <summary>Sets the epoch of <see cref="Indices()"/> (as PyTorch's <c>set_epoch</c>).</summary>
    public void SetEpoch(int epoch) => Epoch = epoch;

    /// <summary>Indices for the epoch last given to <see cref="SetEpoch"/>.</summary>
    public IReadOnlyList<int> Indices() => Indices(Epoch);

    /// <inheritdoc/>
    public IReadOnlyList<int> Indices(int epoch)
    {
        var order = Order(_size, Shuffle, Seed, epoch);
        var result = new int[Count];
        for (int k = 0, i = Rank; i < _size; i += WorldSize, k++) result[k] = order[i];
        return result;
    }

    /// <summary>The epoch's global order: 0..n-1, Fisher–Yates shuffled from (seed, epoch) when asked.</summary>
    public static int[] Order(int size, bool shuffle, long seed, int epoch)
    {
        var order = Enumerable.Range(0, size).ToArray();
        if (!shuffle) return order;
        var rng = SampleRandom.ForEpoch(seed, epoch);
        for (var i = size - 1; i > 0; i--)
        {
            var j = rng.NextInt(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }
}

/// <summary>Validation: every sample exactly once across ranks (no padding), rank r taking indices r, r + world, …</summary>
public sealed class ValidationSampler : ISampler
{
    private readonly int _size;
    private readonly int _rank;
    private readonly int _world;

    /// <summary>Creates the sampler.</summary>
    public ValidationSampler(int datasetSize, int rank = 0, int worldSize = 1)
    {
        if (datasetSize < 0) throw new ArgumentOutOfRangeException(nameof(datasetSize));
        if (worldSize <= 0 || rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} of world {worldSize}");
        (_size, _rank, _world) = (datasetSize, rank, worldSize);
    }

    /// <inheritdoc/>
    public int Count => _size > _rank ? (_size - _rank + _world - 1) / _world : 0;

    /// <inheritdoc/>
    public IReadOnlyList<int> Indices(int epoch)
    {
        var result = new int[Count];
        for (int k = 0, i = _rank; i < _size; i += _world, k++) result[k] = i;
        return result;
    }
}

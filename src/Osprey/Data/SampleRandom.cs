namespace Osprey.Data;

/// <summary>
/// A small counter-based random stream (SplitMix64). Every augmentation draw of a sample comes from
/// <see cref="For"/>(seed, epoch, index), so a sample is the same whatever the worker, rank or batch layout.
/// </summary>
public struct SampleRandom
{
    private ulong _state;

    /// <summary>Starts a stream from a raw 64-bit state.</summary>
    public SampleRandom(ulong state) => _state = state;

    /// <summary>The stream of one sample: a pure function of (seed, epoch, index).</summary>
    public static SampleRandom For(long seed, int epoch, int index) =>
        new(Mix(Mix(Mix((ulong)seed) ^ (ulong)(uint)epoch) + (ulong)(uint)index * 0x9E3779B97F4A7C15UL));

    /// <summary>The stream for one epoch's shuffle.</summary>
    public static SampleRandom ForEpoch(long seed, int epoch) => new(Mix(Mix((ulong)seed + 0xD1B54A32D192ED03UL) ^ (ulong)(uint)epoch));

    /// <summary>SplitMix64's finaliser.</summary>
    public static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Next raw 64 bits.</summary>
    public ulong NextUInt64()
    {
        _state += 0x9E3779B97F4A7C15UL;
        var z = _state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1).</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [low, high).</summary>
    public double Uniform(double low, double high) => low + (high - low) * NextDouble();

    /// <summary>Uniform integer in [0, count).</summary>
    public int NextInt(int count) => count <= 0 ? 0 : (int)((NextUInt64() >> 33) % (ulong)count);
}

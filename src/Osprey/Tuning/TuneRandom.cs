namespace Osprey.Tuning;

/// <summary>
/// The tuner's random numbers: SplitMix64 (Steele, Lea and Flood 2014) seeded from (seed, trial), so that trial i's draws
/// depend on nothing else — a resumed tuner regenerates the same trials, and the order trials finish in does not matter.
/// The algorithm is written out here so that the numbers stay the same across .NET versions.
/// </summary>
public sealed class TuneRandom
{
    ulong _state;

    /// <param name="seed">The tune's <c>seed=</c>.</param>
    /// <param name="trial">The trial's index.</param>
    public TuneRandom(long seed, int trial)
    {
        _state = (ulong)seed;
        _state = Next() ^ (0xD1B54A32D192ED03UL * (ulong)(trial + 1));
    }

    /// <summary>A uniform double in [0, 1) with 53 random bits (numpy's <c>random()</c>).</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

    /// <summary>A standard normal draw (Box–Muller; numpy's <c>randn()</c>).</summary>
    public double NextGaussian()
    {
        double u1 = 1.0 - NextDouble(); // (0, 1]: the logarithm is finite
        double u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    ulong Next()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Benchmarks;

/// <summary>One all-reduce size, timed.</summary>
/// <param name="Backend">"mpi", "nccl" (or "single").</param>
/// <param name="World">Ranks.</param>
/// <param name="Bytes">Buffer size (float32).</param>
/// <param name="Seconds">Median over the repetitions of the slowest rank's time.</param>
public sealed record AllReduceTiming(string Backend, int World, long Bytes, double Seconds)
{
    /// <summary>Algorithm bandwidth: bytes / seconds.</summary>
    public double AlgBytesPerSecond => Bytes / Seconds;

    /// <summary>Bus bandwidth (nccl-tests): 2(W − 1)/W · bytes / seconds; 0 for one rank.</summary>
    public double BusBytesPerSecond => BusFactor(World) * Bytes / Seconds;

    /// <summary>2(W − 1)/W: bytes each rank sends per byte of buffer in a ring all-reduce (0 for one rank).</summary>
    public static double BusFactor(int world) => world <= 1 ? 0 : 2.0 * (world - 1) / world;
}

/// <summary>Times <see cref="IProcessGroup.AllReduce"/> (Average, as the gradient buckets use) per buffer size.</summary>
public static class AllReduceBenchmark
{
    /// <summary>
    /// Every rank calls this with the same sizes. Per size: one untimed all-reduce, then <paramref name="repetitions"/> timed ones,
    /// each after a barrier (and, on CUDA, timed to the end of the device work); the result is the median of the slowest rank's
    /// times (all-reduce Max of the per-repetition times).
    /// </summary>
    public static IReadOnlyList<AllReduceTiming> Run(IProcessGroup group, IReadOnlyList<long> sizesBytes, Device device,
        int repetitions = 5, IProgress<string>? progress = null)
    {
        string backend = group switch { MpiProcessGroup => "mpi", NcclProcessGroup => "nccl", _ => "single" };
        bool cuda = device.type == DeviceType.CUDA;
        var timings = new List<AllReduceTiming>();
        foreach (long bytes in sizesBytes)
        {
            using var scope = NewDisposeScope();
            var buffer = ones(bytes / 4, dtype: ScalarType.Float32, device: device);
            group.AllReduce(buffer, ReduceOp.Average);
            var times = new double[repetitions];
            for (int i = 0; i < repetitions; i++)
            {
                group.Barrier();
                if (cuda) torch.cuda.synchronize(device);
                long start = Stopwatch.GetTimestamp();
                group.AllReduce(buffer, ReduceOp.Average);
                if (cuda) torch.cuda.synchronize(device);
                times[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            }
            var slowest = tensor(times, dtype: ScalarType.Float64);
            group.AllReduce(slowest, ReduceOp.Max);
            double[] sorted = slowest.data<double>().ToArray();
            Array.Sort(sorted);
            var timing = new AllReduceTiming(backend, group.WorldSize, bytes / 4 * 4, Median(sorted));
            timings.Add(timing);
            progress?.Report($"all-reduce {backend} ×{group.WorldSize}: {bytes / 1e6:0.0} MB {timing.Seconds * 1e3:0.00} ms");
        }
        return timings;
    }

    /// <summary>Median of sorted values (mean of the two middle ones for an even count).</summary>
    public static double Median(IReadOnlyList<double> sorted) =>
        sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
}

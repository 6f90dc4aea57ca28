using System.Collections.Concurrent;
using System.Text.Json;
using Osprey.Config;
using Osprey.Distributed;
using Osprey.Models;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Benchmarks;

/// <summary>What <c>osprey bench ddp</c> measures and models.</summary>
/// <param name="Steps">The training step to time (model, global batch, image size, steps).</param>
/// <param name="Device"><c>device=</c>: cpu (MPI ranks), or CUDA indices (NCCL; two ranks need two GPUs); null: CUDA 0 when
/// available, else the CPU.</param>
/// <param name="World">Ranks of the data-parallel run compared with one process (CPU: <c>nproc</c>; CUDA: the GPUs listed).</param>
/// <param name="BufferBytes">All-reduce sizes (null: <see cref="DdpBenchmark.DefaultBufferBytes"/>).</param>
/// <param name="Repetitions">Timed all-reduces per size.</param>
/// <param name="PredictWorld">Ranks of the scaling model (8 GPUs).</param>
/// <param name="StepSeconds">One GPU's step time for the scaling model (null: the measured one-process step).</param>
/// <param name="BusBytesPerSecond">Bus bandwidth for the scaling model (null: fitted to the measured all-reduce times).</param>
/// <param name="Cores">Cores shared by the ranks (null: this machine's).</param>
public sealed record DdpBenchmarkOptions(StepBenchmarkOptions Steps, DeviceRequest? Device = null, int World = 2,
    IReadOnlyList<long>? BufferBytes = null, int Repetitions = 5, int PredictWorld = 8, double? StepSeconds = null,
    double? BusBytesPerSecond = null, int? Cores = null);

/// <summary>What one rank of the data-parallel run reports (rank 0 prints it as one line for the launcher).</summary>
/// <param name="Steps">The data-parallel step at W ranks.</param>
/// <param name="SideBySide">The same ranks each running the rank's share as an independent world-1 step at the same time
/// (no communication): what sharing the machine costs.</param>
/// <param name="AllReduce">All-reduce times per buffer size.</param>
public sealed record DdpRankReport(StepTiming Steps, StepTiming? SideBySide, IReadOnlyList<AllReduceTiming> AllReduce);

/// <summary>Everything <c>osprey bench ddp</c> prints.</summary>
/// <param name="Single">One process, all cores, the global batch (strong scaling's reference).</param>
/// <param name="Parallel">W ranks, the same global batch and cores (null when not run: one GPU).</param>
/// <param name="AllReduce">All-reduce times at W ranks (MPI on CPU, NCCL on CUDA; empty when not run).</param>
/// <param name="SingleRankAllReduce">NCCL with one rank (CUDA only).</param>
/// <param name="Cost">The ring cost model used for the prediction (null when nothing gives a bandwidth).</param>
/// <param name="Prediction">The scaling model (null without <paramref name="Cost"/>).</param>
/// <param name="Assumptions">Where each input of the model comes from and what it assumes.</param>
public sealed record DdpBenchmarkResult(StepTiming Single, StepTiming? Parallel, IReadOnlyList<AllReduceTiming> AllReduce,
    IReadOnlyList<AllReduceTiming> SingleRankAllReduce, AllReduceCostModel? Cost, ScalingPrediction? Prediction,
    IReadOnlyList<string> Assumptions)
{
    /// <summary>One process with one rank's threads and batch, alone (weak scaling's reference; null at W = 1).</summary>
    public StepTiming? Alone { get; init; }

    /// <summary>W independent world-1 processes, each with one rank's threads and batch, side by side (null at W = 1).</summary>
    public StepTiming? SideBySide { get; init; }

    /// <summary>Strong scaling (same global batch, same cores): W-rank median step / one-process median step − 1 (null without a W-rank run).</summary>
    public double? OverheadRatio => Parallel is null ? null : Parallel.MedianStep / Single.MedianStep - 1;

    /// <summary>Weak scaling, DDP's usual definition (same batch and threads per rank): (T_W − T_1) / T_1 with T_1 one rank alone.</summary>
    public double? WeakOverheadRatio => Parallel is null || Alone is null ? null : Parallel.MedianStep / Alone.MedianStep - 1;

    /// <summary>Of the weak overhead, what W processes sharing the machine cost without communicating: side by side / alone − 1.</summary>
    public double? ContentionRatio => SideBySide is null || Alone is null ? null : SideBySide.MedianStep / Alone.MedianStep - 1;

    /// <summary>What data parallelism itself adds to processes that share the machine anyway: W ranks / side by side − 1.</summary>
    public double? CommunicationRatio => Parallel is null || SideBySide is null ? null : Parallel.MedianStep / SideBySide.MedianStep - 1;
}

/// <summary>
/// <c>osprey bench ddp</c>: the training step at one process and at W ranks (same global batch, same cores: threads per
/// rank = cores / W), all-reduce time and bus bandwidth per buffer size, and a ring model of W = 8 GPUs from those numbers
/// (<see cref="ScalingModel"/>). The W-rank run is this same program started again by <see cref="LocalLauncher"/>
/// (mpirun on CPU, spawned ranks with NCCL on CUDA); its rank 0 prints <see cref="ResultPrefix"/> + JSON.
/// </summary>
public static class DdpBenchmark
{
    /// <summary>Start of the line a rank-0 report is printed on.</summary>
    public const string ResultPrefix = "osprey-bench-ddp-rank-report: ";

    /// <summary>Untimed steps before the timed ones.</summary>
    public const int WarmupSteps = 2;

    static readonly ConcurrentDictionary<string, long> GradientBytesCache = new();

    /// <summary>Bytes of the trainable parameters' gradients (float32) of a model, e.g. 12.6 MB for yolov8n.yaml.</summary>
    public static long GradientBytes(string model, int? nc = null) => GradientBytesCache.GetOrAdd($"{model}|{nc}", _ =>
    {
        using var built = ModelFactory.Create(model, nc);
        return built.parameters().Where(p => p.requires_grad).Sum(p => p.numel() * p.element_size());
    });

    /// <summary>
    /// Environment variable with the all-reduce sizes in bytes, comma-separated: set by <see cref="Run"/> for its ranks (so they
    /// do not build YOLOv8x again); set by a user, it replaces <see cref="DefaultBufferBytes"/>.
    /// </summary>
    public const string BuffersVariable = "OSPREY_BENCH_DDP_BUFFERS";

    /// <summary>The sizes to all-reduce: the options', else <see cref="BuffersVariable"/>'s, else the defaults.</summary>
    /// <exception cref="ArgumentsException">The variable is not a list of positive byte counts.</exception>
    public static IReadOnlyList<long> BufferBytes(DdpBenchmarkOptions options)
    {
        if (options.BufferBytes is { } given) return given;
        string? text = Environment.GetEnvironmentVariable(BuffersVariable);
        if (string.IsNullOrWhiteSpace(text)) return DefaultBufferBytes(options.Steps.Model, options.Steps.Nc);
        var sizes = new List<long>();
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!long.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long bytes) || bytes < 4)
                throw new ArgumentsException($"{BuffersVariable}={text}: '{part}' is not a buffer size in bytes (≥ 4)");
            sizes.Add(bytes);
        }
        return sizes;
    }

    /// <summary>1 MiB (latency), the YOLOv8n gradients, one full 25 MiB bucket, the YOLOv8x gradients, and the benchmarked model's.</summary>
    public static IReadOnlyList<long> DefaultBufferBytes(string? model = null, int? nc = null)
    {
        var sizes = new List<long> { 1L << 20, GradientBytes("yolov8n.yaml"), Replica.DefaultBucketBytes, GradientBytes("yolov8x.yaml") };
        if (model is not null) sizes.Add(GradientBytes(model, nc));
        return sizes.Distinct().Order().ToArray();
    }

    /// <summary>One rank of the W-rank run (started by mpirun or spawned): times the step and the all-reduces.</summary>
    public static DdpRankReport RunRank(DdpBenchmarkOptions options, DistributedEnvironment environment, IProgress<string>? progress = null)
    {
        Device device = (options.Device ?? DeviceRequest.Parse(null)).Resolve(environment.LocalRank, environment.LocalWorldSize);
        torch.set_num_threads(ThreadsPerRank(options, environment.WorldSize));
        IReadOnlyList<long> sizes = BufferBytes(options);
        using IProcessGroup group = ProcessGroupFactory.Create(device, environment);
        // First each rank's share as an independent process beside the others (contention only), then data parallel.
        StepTiming sideBySide = StepBenchmark.Run(RankShare(options.Steps, environment.WorldSize), new SingleProcessGroup(), device,
            progress, reportGroup: group);
        StepTiming steps = StepBenchmark.Run(options.Steps, group, device, progress);
        var allReduce = AllReduceBenchmark.Run(group, sizes, device, options.Repetitions, progress);
        group.Barrier();
        return new DdpRankReport(steps, sideBySide, allReduce);
    }

    /// <summary>One rank's share of the step: the global batch / W (weak scaling's per-rank step).</summary>
    public static StepBenchmarkOptions RankShare(StepBenchmarkOptions steps, int world) => steps with { GlobalBatch = steps.GlobalBatch / world };

    /// <summary>Threads per rank: the cores split evenly (at least one).</summary>
    public static int ThreadsPerRank(DdpBenchmarkOptions options, int world) => Math.Max(1, (options.Cores ?? Environment.ProcessorCount) / world);

    /// <summary>The line rank 0 prints.</summary>
    public static string FormatReport(DdpRankReport report) => ResultPrefix + JsonSerializer.Serialize(report);

    /// <summary>The report in a launch's output.</summary>
    /// <exception cref="InvalidOperationException">No rank printed one.</exception>
    public static DdpRankReport ParseReport(IEnumerable<string> lines)
    {
        string? line = lines.LastOrDefault(l => l.StartsWith(ResultPrefix, StringComparison.Ordinal));
        if (line is null) throw new InvalidOperationException("bench ddp: the ranks ended without a report (see their output above)");
        return JsonSerializer.Deserialize<DdpRankReport>(line[ResultPrefix.Length..])
               ?? throw new InvalidOperationException("bench ddp: empty rank report");
    }

    /// <summary>
    /// The whole benchmark from a process that is not a rank: one process here, then <see cref="DdpBenchmarkOptions.World"/> ranks
    /// running <paramref name="program"/> <paramref name="programArguments"/> (this program in its rank mode), then the model.
    /// </summary>
    public static DdpBenchmarkResult Run(DdpBenchmarkOptions options, string program, IReadOnlyList<string> programArguments,
        IProgress<string>? progress = null)
    {
        var request = options.Device ?? DeviceRequest.Parse(null);
        Device device = request.Resolve();
        int world = request.IsCuda ? request.CudaIndices.Count : options.World;
        if (world < 1) throw new ArgumentsException("bench ddp needs nproc ≥ 1");
        IReadOnlyList<long> sizes = BufferBytes(options);

        int previousThreads = torch.get_num_threads();
        StepTiming single;
        StepTiming? alone = null;
        try
        {
            torch.set_num_threads(ThreadsPerRank(options, 1));
            single = StepBenchmark.Run(options.Steps, new SingleProcessGroup(), device, progress);
            if (world > 1)
            {
                // weak scaling's reference: one rank's threads and batch, alone on the machine
                torch.set_num_threads(ThreadsPerRank(options, world));
                alone = StepBenchmark.Run(RankShare(options.Steps, world), new SingleProcessGroup(), device, progress);
            }
        }
        finally
        {
            torch.set_num_threads(previousThreads);
        }
        IReadOnlyList<AllReduceTiming> oneRank = Array.Empty<AllReduceTiming>();
        if (request.IsCuda)
        {
            if (!NcclProcessGroup.IsAvailable(out string error)) throw new DistributedException(error);
            using var nccl = new NcclProcessGroup(DistributedEnvironment.Single, device.index);
            oneRank = AllReduceBenchmark.Run(nccl, sizes, device, options.Repetitions, progress);
        }

        StepTiming? parallel = null, sideBySide = null;
        IReadOnlyList<AllReduceTiming> allReduce = Array.Empty<AllReduceTiming>();
        if (world > 1)
        {
            var launch = new LaunchOptions(world, program, programArguments)
            {
                Mode = request.IsCuda ? LaunchMode.Spawn : LaunchMode.Mpirun,
                Environment = new Dictionary<string, string>
                {
                    [BuffersVariable] = string.Join(',', sizes),
                    // threads per rank as cores= says (the launcher's own default counts this machine's cores; it binds to none)
                    ["OMP_NUM_THREADS"] = ThreadsPerRank(options, world).ToString(System.Globalization.CultureInfo.InvariantCulture),
                },
                Output = line => { if (!line.Text.StartsWith(ResultPrefix, StringComparison.Ordinal)) progress?.Report(line.Text); },
            };
            LaunchResult result = LocalLauncher.RunAsync(launch).GetAwaiter().GetResult();
            if (result.ExitCode != 0)
                throw new DistributedException($"bench ddp: the {world}-rank run failed (exit {result.ExitCode}, rank {result.FailedRank?.ToString() ?? "?"})");
            DdpRankReport report = ParseReport(result.Output.Select(l => l.Text));
            (parallel, sideBySide, allReduce) = (report.Steps, report.SideBySide, report.AllReduce);
        }
        var (cost, prediction, assumptions) = Model(options, single, allReduce, oneRank);
        return new DdpBenchmarkResult(single, parallel, allReduce, oneRank, cost, prediction, assumptions)
        {
            Alone = alone, SideBySide = sideBySide,
        };
    }

    /// <summary>The scaling model's inputs and prediction, with the assumptions behind each input.</summary>
    public static (AllReduceCostModel? Cost, ScalingPrediction? Prediction, IReadOnlyList<string> Assumptions) Model(
        DdpBenchmarkOptions options, StepTiming single, IReadOnlyList<AllReduceTiming> allReduce, IReadOnlyList<AllReduceTiming> oneRank)
    {
        var notes = new List<string>();
        StepCompute measured = single.MedianCompute;
        StepCompute compute = options.StepSeconds is double given ? measured.ScaledTo(given) : measured;
        notes.Add(options.StepSeconds is double s
            ? $"compute per GPU step: {s * 1e3:0.###} ms given (step_ms), split forward/backward/optimiser in the shares measured here " +
              $"({measured.Forward / measured.Total:P0}/{measured.Backward / measured.Total:P0}/{measured.Optimizer / measured.Total:P0})"
            : $"compute per rank step: the one-process step measured here ({measured.Total * 1e3:0.0} ms at batch {single.GlobalBatch}, " +
              $"{single.ThreadsPerRank} threads); weak scaling: every one of the {options.PredictWorld} ranks keeps this batch");
        notes.Add($"gradients all-reduced in {single.GradientBucketBytes.Count} bucket(s) of ≤ 25 MiB " +
                  $"({string.Join(", ", single.GradientBucketBytes.Select(b => $"{b / 1e6:0.0} MB"))}), one after another, ring algorithm");
        notes.Add("overlap: a bucket is ready when backward has produced its bytes, at a constant rate over backward");

        AllReduceCostModel? cost = null;
        int measuredWorld = allReduce.Count > 0 ? allReduce[0].World : 1;
        if (measuredWorld > 1)
        {
            var timings = allReduce.Select(t => ((double)t.Bytes, t.Seconds)).ToArray();
            if (timings.Select(m => m.Item1).Distinct().Count() >= 2 && AllReduceCostModel.FitLine(timings, strict: false) is { Slope: > 0 })
            {
                cost = AllReduceCostModel.Fit(timings, measuredWorld);
                notes.Add($"ring: α = {cost.StepLatencySeconds * 1e6:0.0} µs per step and B = {cost.BusBytesPerSecond / 1e9:0.00} GB/s " +
                          $"fitted to the {allReduce[0].Backend} all-reduce times (smallest and largest buffer) at {measuredWorld} ranks");
            }
            else
            {
                // one size, or times that did not grow with the size (noise at small buffers): bandwidth of the largest, α = 0
                var largest = allReduce.MaxBy(t => t.Bytes)!;
                cost = new AllReduceCostModel(0, AllReduceTiming.BusFactor(measuredWorld) * largest.Bytes / largest.Seconds);
                notes.Add($"ring: α = 0 and B = {cost.BusBytesPerSecond / 1e9:0.00} GB/s from the largest {allReduce[0].Backend} buffer alone " +
                          $"at {measuredWorld} ranks (the times did not grow with the size, so no line could be fitted)");
            }
            if (options.BusBytesPerSecond is double b)
            {
                cost = cost with { BusBytesPerSecond = b };
                notes.Add($"B replaced by busbw = {b / 1e9:0.##} GB/s given");
            }
        }
        else if (options.BusBytesPerSecond is double b)
        {
            var (c, d) = oneRank.Count >= 2
                ? AllReduceCostModel.FitLine(oneRank.Select(t => ((double)t.Bytes, t.Seconds)).ToArray())
                : (0, 0);
            cost = new AllReduceCostModel(0, b, Math.Max(c, 0), d);
            notes.Add($"ring: B = {b / 1e9:0.##} GB/s given (busbw), α = 0 (not measured: one rank)" +
                      (oneRank.Count >= 2 ? $"; plus the one-rank NCCL cost {Math.Max(c, 0) * 1e6:0.0} µs + {d * 1e12:0.000} ps/byte (fitted)" : ""));
        }
        else
        {
            notes.Add("no scaling model: no all-reduce measured at ≥ 2 ranks; give busbw=… (GB/s, e.g. from nccl-tests on 8 GPUs)");
            return (null, null, notes);
        }
        notes.Add("not modelled: data loading, stragglers, BatchNorm buffer broadcast, the loss's scalar all-reduces");
        return (cost, ScalingModel.Predict(compute, single.GradientBucketBytes, cost, options.PredictWorld), notes);
    }
}

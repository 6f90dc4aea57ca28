using System.Diagnostics;
using Osprey.Config;
using Osprey.Distributed;
using Osprey.Losses;
using Osprey.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Benchmarks;

/// <summary>What <see cref="StepBenchmark"/> trains.</summary>
/// <param name="Model"><c>model=</c> (a YAML or weights).</param>
/// <param name="GlobalBatch">Images per step over all ranks (split evenly).</param>
/// <param name="ImageSize">Square input size.</param>
/// <param name="Steps">Timed steps.</param>
/// <param name="WarmupSteps">Untimed steps before them.</param>
/// <param name="Nc">Class count override (null: the model's).</param>
/// <param name="Seed">Weights and synthetic batch.</param>
public sealed record StepBenchmarkOptions(string Model, int GlobalBatch, int ImageSize, int Steps, int WarmupSteps = 2, int? Nc = null, int Seed = 0);

/// <summary>Timed training steps at one world size. Per-step times are the slowest rank's (all-reduce Max).</summary>
/// <param name="World">Ranks.</param>
/// <param name="ThreadsPerRank">torch intra-op threads of each rank.</param>
/// <param name="GlobalBatch">Images per step over all ranks.</param>
/// <param name="ImageSize">Input size.</param>
/// <param name="StepSeconds">Each timed step, whole (warm-up excluded).</param>
/// <param name="ForwardSeconds">Each timed step's forward + loss (with the loss's cross-rank sums).</param>
/// <param name="BackwardSeconds">Each timed step's backward.</param>
/// <param name="AllReduceSeconds">Each timed step's gradient all-reduce (<see cref="Replica.AverageGradients"/>).</param>
/// <param name="OptimizerSeconds">Each timed step's clipping, SGD step and EMA update.</param>
/// <param name="GradientBucketBytes">The model's gradient buckets in all-reduce order.</param>
/// <param name="Ranks">Each rank's breakdown (compute, copies, collectives split into wait and transfer).</param>
/// <param name="Concurrent">Processes that ran the step side by side: <paramref name="World"/>, or W independent world-1
/// processes (no communication: what sharing the machine alone costs).</param>
public sealed record StepTiming(int World, int ThreadsPerRank, int GlobalBatch, int ImageSize, IReadOnlyList<double> StepSeconds,
    IReadOnlyList<double> ForwardSeconds, IReadOnlyList<double> BackwardSeconds, IReadOnlyList<double> AllReduceSeconds,
    IReadOnlyList<double> OptimizerSeconds, IReadOnlyList<long> GradientBucketBytes, IReadOnlyList<RankBreakdown> Ranks,
    int Concurrent)
{
    /// <summary>Images per step on each rank.</summary>
    public int RankBatch => GlobalBatch / World;

    /// <summary>Median of <see cref="StepSeconds"/>.</summary>
    public double MedianStep => MedianOf(StepSeconds);

    /// <summary>Medians of forward, backward and optimiser: one rank's compute per step.</summary>
    public StepCompute MedianCompute => new(MedianOf(ForwardSeconds), MedianOf(BackwardSeconds), MedianOf(OptimizerSeconds));

    /// <summary>Median of <see cref="AllReduceSeconds"/>.</summary>
    public double MedianAllReduce => MedianOf(AllReduceSeconds);

    /// <summary>The median of any list of values.</summary>
    public static double MedianOf(IReadOnlyList<double> values) => AllReduceBenchmark.Median(values.Order().ToArray());
}

/// <summary>
/// Times the trainer's <see cref="TrainStep"/> on a fixed synthetic batch (random images, four boxes per image), so data
/// loading is out of the measurement: BatchNorm buffers broadcast (world &gt; 1), forward, the v8 loss with its global
/// normaliser, the loss items summed over ranks, backward, the gradient all-reduce in 25 MB buckets, clipping, SGD and the
/// EMA update. Every step is an optimiser step (nominal batch = batch), so every step all-reduces, as Ultralytics' DDP does.
/// </summary>
public static class StepBenchmark
{
    /// <summary>Runs on every rank of <paramref name="group"/> (a <see cref="SingleProcessGroup"/> for one process).</summary>
    /// <param name="options">What to train.</param>
    /// <param name="group">The data-parallel ranks.</param>
    /// <param name="device">Where.</param>
    /// <param name="progress">One line per step.</param>
    /// <param name="reportGroup">The processes whose times are combined (null: <paramref name="group"/>); a wider group than
    /// <paramref name="group"/> runs independent world-1 steps side by side (started together by a barrier).</param>
    /// <exception cref="ArgumentsException">The batch does not split evenly over the ranks.</exception>
    public static StepTiming Run(StepBenchmarkOptions options, IProcessGroup group, Device device, IProgress<string>? progress = null,
        IProcessGroup? reportGroup = null)
    {
        reportGroup ??= group;
        int world = group.WorldSize;
        if (options.GlobalBatch < world || options.GlobalBatch % world != 0)
            throw new ArgumentsException($"batch={options.GlobalBatch} does not split evenly over {world} ranks: use a multiple of {world}");
        if (options.Steps < 1) throw new ArgumentsException("bench ddp needs steps ≥ 1 (timed training steps)");
        torch.manual_seed(options.Seed);
        var parallel = new DataParallel(group);
        var clock = new StepRecorder(device);
        using DetectionModel model = ModelFactory.Create(options.Model, options.Nc);
        model.to(device);
        model.train();
        using var flat = FlatParameters.For(model);                       // as the trainer
        using var replica = parallel.Wrap(model, flat, syncBatchNorm: false);
        using var emaModel = new DetectionModel(model.Config, model.Registry);
        emaModel.load_state_dict(model.state_dict());
        emaModel.to(device);
        using var ema = new ModelEma(emaModel);
        ema.UseFlatLayout(model, flat);
        var loss = model.Head.CreateLoss(new DetectionLossOptions
        {
            NumClasses = model.Nc, RegMax = model.RegMax, Strides = model.Strides.ToArray(), GlobalSum = clock.Normaliser(parallel),
        });
        var optimizer = TrainingOptimizer.Create(model, OptimizerChoice.SGD, 0.01, 0.937, 0.0005, 0.1, model.Nc, iterations: 1000,
            batch: options.GlobalBatch, accumulate: 1, nominalBatch: options.GlobalBatch, flat: flat);
        var step = new TrainStep(model, replica, loss, new WeightUpdate(model, optimizer.Optimizer, ema, null), null);
        using var batchScope = NewDisposeScope();
        var (images, targets) = SyntheticBatch(options, options.GlobalBatch / world, group.Rank, model.Nc, device);

        var records = new double[options.Steps, StepBreakdown.Columns];
        if (reportGroup.WorldSize > 1) reportGroup.Barrier();          // processes side by side start together
        for (int i = 0; i < options.WarmupSteps + options.Steps; i++)
        {
            using var scope = NewDisposeScope();
            clock.Begin();
            replica.BeforeForward();
            clock.Lap(StepPhase.Other);
            step.Run(images, targets, optimizerStep: true, clock, $"step {i + 1}");
            int timed = i - options.WarmupSteps;
            if (timed >= 0) clock.Record(records, timed, world > 1 ? replica.LastSync : null);
            progress?.Report($"world {world}{(reportGroup.WorldSize > world ? $" (×{reportGroup.WorldSize} side by side)" : "")}: " +
                             $"step {i + 1}/{options.WarmupSteps + options.Steps}{(timed < 0 ? " (warm-up)" : "")} {clock.StepSeconds * 1e3:0.0} ms");
        }
        return Timing(options, GatherRecords(reportGroup, records, device), world, replica.Buckets, reportGroup.WorldSize);
    }

    // One synthetic batch per rank (different per rank, fixed over steps): random images, four boxes per image.
    static (Tensor Images, DetectionTargets Targets) SyntheticBatch(StepBenchmarkOptions options, int rankBatch, int rank, int nc, Device device)
    {
        var generator = new Generator((ulong)(options.Seed * 1000 + rank + 1));
        var images = rand(new long[] { rankBatch, 3, options.ImageSize, options.ImageSize }, generator: generator).to(device);
        const int boxesPerImage = 4;
        long objects = rankBatch * boxesPerImage;
        var targets = new DetectionTargets(
            arange(rankBatch).repeat_interleave(boxesPerImage).to(ScalarType.Float32).to(device),
            randint(nc, new long[] { objects }, generator: generator).to(ScalarType.Float32).to(device),
            cat(new[]
            {
                rand(new long[] { objects, 2 }, generator: generator) * 0.6 + 0.2,     // centres in [0.2, 0.8]
                rand(new long[] { objects, 2 }, generator: generator) * 0.25 + 0.05,   // sizes in [0.05, 0.3]
            }, 1).to(device));
        return (images, targets);
    }

    // The slowest process per phase and step (every process's records share one machine's clock).
    static StepTiming Timing(StepBenchmarkOptions options, double[][,] all, int world, IReadOnlyList<long> buckets, int concurrent)
    {
        var phases = new double[options.Steps, 5];
        foreach (double[,] r in all)
            for (int s = 0; s < options.Steps; s++)
            {
                double Span(int from, int to) => (r[s, to] - r[s, from]) / Stopwatch.Frequency;
                double[] values =
                {
                    Span(StepBreakdown.Start, StepBreakdown.End), Span(StepBreakdown.Start, StepBreakdown.ItemsEnd),
                    Span(StepBreakdown.ItemsEnd, StepBreakdown.BackwardEnd), Span(StepBreakdown.BackwardEnd, StepBreakdown.SyncEnd),
                    Span(StepBreakdown.SyncEnd, StepBreakdown.End),
                };
                for (int c = 0; c < 5; c++) phases[s, c] = Math.Max(phases[s, c], values[c]);
            }
        double[] Column(int c) => Enumerable.Range(0, options.Steps).Select(s => phases[s, c]).ToArray();
        return new StepTiming(world, torch.get_num_threads(), options.GlobalBatch, options.ImageSize,
            Column(0), Column(1), Column(2), Column(3), Column(4), buckets, StepBreakdown.Compute(all, collectives: world > 1), concurrent);
    }

    // All processes' records, in rank order (all-gather of float64: the tick counts are exact below 2^53).
    static double[][,] GatherRecords(IProcessGroup group, double[,] records, Device device)
    {
        int steps = records.GetLength(0), columns = records.GetLength(1);
        using var scope = NewDisposeScope();
        var local = torch.tensor(records.Cast<double>().ToArray(), dtype: ScalarType.Float64).to(device); // NCCL takes CUDA tensors
        double[] flat = group.AllGather(local).cpu().data<double>().ToArray();
        return Enumerable.Range(0, group.WorldSize).Select(r =>
        {
            var one = new double[steps, columns];
            for (int s = 0; s < steps; s++)
                for (int c = 0; c < columns; c++) one[s, c] = flat[(r * steps + s) * columns + c];
            return one;
        }).ToArray();
    }

    static double Seconds(long from, long to) => Stopwatch.GetElapsedTime(from, to).TotalSeconds;
}

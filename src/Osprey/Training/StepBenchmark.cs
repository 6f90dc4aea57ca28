using System.Diagnostics;
using Osprey.Config;
using Osprey.Distributed;
using Osprey.Losses;
using Osprey.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training;

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
/// <param name="AllReduceSeconds">Each timed step's gradient all-reduce (<see cref="DataParallel.AverageGradients"/>).</param>
/// <param name="OptimizerSeconds">Each timed step's clipping, SGD step and EMA update.</param>
/// <param name="GradientBucketBytes">The model's gradient buckets in all-reduce order.</param>
public sealed record StepTiming(int World, int ThreadsPerRank, int GlobalBatch, int ImageSize, IReadOnlyList<double> StepSeconds,
    IReadOnlyList<double> ForwardSeconds, IReadOnlyList<double> BackwardSeconds, IReadOnlyList<double> AllReduceSeconds,
    IReadOnlyList<double> OptimizerSeconds, IReadOnlyList<long> GradientBucketBytes)
{
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
/// Times the trainer's step on a fixed synthetic batch (random images, four boxes per image), so data loading is out of
/// the measurement: BatchNorm buffers broadcast (world &gt; 1), forward, the v8 loss with its global normaliser, the loss
/// items summed over ranks, backward, the gradient all-reduce in 25 MB buckets, clipping, SGD and the EMA update. Every
/// step is an optimiser step (nominal batch = batch), so every step all-reduces, as Ultralytics' DDP does.
/// </summary>
public static class StepBenchmark
{
    /// <summary>Runs on every rank of <paramref name="group"/> (a <see cref="SingleProcessGroup"/> for one process).</summary>
    /// <exception cref="ArgumentsException">The batch does not split evenly over the ranks.</exception>
    public static StepTiming Run(StepBenchmarkOptions options, IProcessGroup group, Device device, IProgress<string>? progress = null)
    {
        int world = group.WorldSize;
        if (options.GlobalBatch < world || options.GlobalBatch % world != 0)
            throw new ArgumentsException($"batch={options.GlobalBatch} does not split evenly over {world} ranks: use a multiple of {world}");
        if (options.Steps < 1) throw new ArgumentsException("bench ddp needs steps ≥ 1 (timed training steps)");
        int rankBatch = options.GlobalBatch / world;
        bool cuda = device.type == DeviceType.CUDA;
        void Sync() { if (cuda) torch.cuda.synchronize(device); }

        torch.manual_seed(options.Seed);
        using DetectionModel model = ModelFactory.Create(options.Model, options.Nc);
        model.to(device);
        model.train();
        var ddp = new DataParallel(model, group);
        ddp.BroadcastState();
        using var emaModel = new DetectionModel(model.Config);
        emaModel.load_state_dict(model.state_dict());
        emaModel.to(device);
        var ema = new ModelEma(emaModel);
        int nc = model.Nc;
        var loss = new DetectionLoss(new DetectionLossOptions
        {
            NumClasses = nc, RegMax = model.RegMax, Strides = model.Strides.ToArray(),
            ReduceTargetScoresSum = world == 1 ? null : local =>
            {
                var global = local.clone();
                group.AllReduce(global, ReduceOp.Sum);
                return global;
            },
        });
        var optimizer = TrainingOptimizer.Create(model, "SGD", 0.01, 0.937, 0.0005, 0.1, nc, iterations: 1000,
            batch: options.GlobalBatch, accumulate: 1, nominalBatch: options.GlobalBatch);
        using var lossScale = torch.tensor((double)world * world);

        // One synthetic batch per rank (different per rank, fixed over steps).
        using var batchScope = NewDisposeScope();
        var generator = new Generator((ulong)(options.Seed * 1000 + group.Rank + 1));
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

        var phases = new double[options.Steps, 5];
        for (int step = 0; step < options.WarmupSteps + options.Steps; step++)
        {
            using var scope = NewDisposeScope();
            Sync();
            long start = Stopwatch.GetTimestamp();
            if (world > 1) ddp.BroadcastBuffers();
            var maps = model.ForwardFeatures(images);
            using var result = loss.Compute(maps, targets);
            var (box, cls, dfl) = result.ItemValues();
            if (world > 1) ddp.SumOverRanks(new double[] { box, cls, dfl });
            Sync();
            long forward = Stopwatch.GetTimestamp();
            (world == 1 ? result.Total : result.Total * lossScale).backward();
            Sync();
            long backward = Stopwatch.GetTimestamp();
            ddp.AverageGradients();
            Sync();
            long allReduce = Stopwatch.GetTimestamp();
            nn.utils.clip_grad_norm_(model.parameters().Where(p => p.requires_grad), Trainer.MaxGradientNorm);
            optimizer.Optimizer.Step();
            optimizer.Optimizer.ZeroGrad();
            ema.Update(model);
            Sync();
            long end = Stopwatch.GetTimestamp();
            int timed = step - options.WarmupSteps;
            if (timed >= 0)
            {
                phases[timed, 0] = Seconds(start, end);
                phases[timed, 1] = Seconds(start, forward);
                phases[timed, 2] = Seconds(forward, backward);
                phases[timed, 3] = Seconds(backward, allReduce);
                phases[timed, 4] = Seconds(allReduce, end);
            }
            progress?.Report($"world {world}: step {step + 1}/{options.WarmupSteps + options.Steps}{(timed < 0 ? " (warm-up)" : "")} " +
                             $"{Seconds(start, end) * 1e3:0.0} ms");
        }

        // The slowest rank's time of each phase of each step.
        using var slowest = torch.tensor(phases.Cast<double>().ToArray(), dtype: ScalarType.Float64);
        group.AllReduce(slowest, ReduceOp.Max);
        double[] all = slowest.data<double>().ToArray();
        double[] Column(int c) => Enumerable.Range(0, options.Steps).Select(s => all[s * 5 + c]).ToArray();
        return new StepTiming(world, torch.get_num_threads(), options.GlobalBatch, options.ImageSize,
            Column(0), Column(1), Column(2), Column(3), Column(4), ddp.BucketBytes);
    }

    static double Seconds(long from, long to) => Stopwatch.GetElapsedTime(from, to).TotalSeconds;
}

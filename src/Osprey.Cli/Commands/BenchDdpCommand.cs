using System.Globalization;
using Osprey.Benchmarks;
using Osprey.Config;
using Osprey.Distributed;
using Osprey.Training;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary>
/// <c>osprey bench ddp [model=yolov8n.yaml] [imgsz=320] [batch=16] [steps=10] [nproc=2] [device=cpu|0|0,1] [step_ms=…] [busbw=…]</c>:
/// training step time at one process and at <c>nproc</c> ranks: strong scaling (same global batch, same cores), weak scaling
/// (same batch and threads per rank: one rank alone), the cost of sharing the machine (ranks side by side without
/// communication) and a per-rank breakdown (compute, copies, wait, transfer); all-reduce time and bus bandwidth per buffer
/// size, and a scaling model of 8 GPUs. <c>OSPREY_BENCH_DDP_BUFFERS=bytes,bytes,…</c>
/// replaces the all-reduce sizes (default: 1 MiB, YOLOv8n's and YOLOv8x's gradients, a 25 MiB bucket). Registered as <c>bench-ddp</c>; started by mpirun or
/// spawned (the rank run this command launches), it is one rank and rank 0 prints its report as one line.
/// </summary>
public sealed partial class BenchDdpCommand : ICliCommand
{
    /// <summary>Target of issue #5: W ranks at most 5 % slower per step than one process with the same cores.</summary>
    public const double OverheadTarget = 0.05;

    /// <summary>Target of issue #5: predicted 8-GPU efficiency at least 95 %.</summary>
    public const double EfficiencyTarget = 0.95;

    public string Name => "bench-ddp";
    public string Description => "data-parallel step time at 1 vs nproc ranks, all-reduce bandwidth, 8-GPU scaling model (osprey bench ddp [model] [imgsz] [batch] [steps] [step_ms] [busbw])";

    public OspreyArgs Defaults() => new() { Imgsz = 320, Nproc = 2 };

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        DdpBenchmarkOptions options = Options(args);
        var environment = DistributedEnvironment.FromProcess();
        if (environment.IsDistributed)
        {
            // One rank of the run launched below: rank 0 reports (raw lines: the launcher parses them).
            var progress = new LineProgress(environment.IsMaster);
            DdpRankReport report = DdpBenchmark.RunRank(options, environment, progress);
            if (environment.IsMaster) Console.Out.WriteLine(DdpBenchmark.FormatReport(report));
            return 0;
        }
        string dll = typeof(BenchDdpCommand).Assembly.Location;
        var rankArguments = new List<string> { dll, Name };
        rankArguments.AddRange(ArgsSchema.All.Where(s => args.IsGiven(s.Key)).Select(s => $"{s.Key}={ArgsSchema.Format(s.Property.GetValue(args))}"));
        var result = DdpBenchmark.Run(options, LocalLauncher.DotnetHost, rankArguments, new BenchProgress(output));
        Render(result, options, args, output);
        return 0;
    }

    /// <summary>The benchmark's options from the arguments (checked).</summary>
    public static DdpBenchmarkOptions Options(OspreyArgs args)
    {
        if (args.Steps < 1) throw new ArgumentsException($"steps={args.Steps}: bench ddp needs steps ≥ 1 (timed training steps)");
        if (args.Batch < 1) throw new ArgumentsException($"batch={args.Batch}: bench ddp needs a fixed global batch ≥ 1");
        if (args.Nproc < 1) throw new ArgumentsException($"nproc={args.Nproc}: bench ddp needs nproc ≥ 1");
        if (args.Imgsz < 32 || args.Imgsz % 32 != 0) throw new ArgumentsException($"imgsz={args.Imgsz}: bench ddp needs a multiple of 32");
        if (args.StepMs is <= 0) throw new ArgumentsException($"step_ms={args.StepMs}: a step time must be positive");
        if (args.Busbw is <= 0) throw new ArgumentsException($"busbw={args.Busbw}: a bandwidth must be positive");
        int batch = args.WholeBatch("bench ddp");
        if (batch % args.Nproc != 0)
            throw new ArgumentsException($"batch={batch} does not split evenly over nproc={args.Nproc} ranks: use a multiple of {args.Nproc}");
        return new DdpBenchmarkOptions(
            new StepBenchmarkOptions(args.Model ?? "yolov8n.yaml", batch, args.Imgsz, args.Steps, DdpBenchmark.WarmupSteps, args.Nc, args.Seed),
            Device: args.Device, World: args.Nproc, StepSeconds: args.StepMs / 1e3, BusBytesPerSecond: args.Busbw * 1e9);
    }

    static void Render(DdpBenchmarkResult r, DdpBenchmarkOptions options, OspreyArgs args, IAnsiConsole output)
    {
        var runs = new List<(string Name, StepTiming Timing)> { ("one process", r.Single) };
        if (r.Alone is { } alone) runs.Add(("one rank alone", alone));
        if (r.SideBySide is { } side) runs.Add(("side by side", side));
        if (r.Parallel is { } parallel) runs.Add(("data parallel", parallel));
        var steps = new Table().Border(TableBorder.Simple).AddColumn("run").AddColumn(new TableColumn("ranks").RightAligned())
            .AddColumn(new TableColumn("threads/rank").RightAligned()).AddColumn(new TableColumn("batch/rank").RightAligned())
            .AddColumn(new TableColumn("step ms").RightAligned()).AddColumn(new TableColumn("forward").RightAligned())
            .AddColumn(new TableColumn("backward").RightAligned()).AddColumn(new TableColumn("all-reduce").RightAligned())
            .AddColumn(new TableColumn("optimiser").RightAligned());
        foreach (var (name, t) in runs)
            steps.AddRow(name, I(t.Concurrent), I(t.ThreadsPerRank), I(t.RankBatch), Ms(t.MedianStep), Ms(StepTiming.MedianOf(t.ForwardSeconds)),
                Ms(StepTiming.MedianOf(t.BackwardSeconds)), Ms(t.MedianAllReduce), Ms(StepTiming.MedianOf(t.OptimizerSeconds)));
        output.Write(steps);
        output.WriteLine(F($"{options.Steps.Model}: imgsz {options.Steps.ImageSize}, global batch {options.Steps.GlobalBatch}, {options.Steps.Steps} timed steps after {options.Steps.WarmupSteps} warm-up; medians of the slowest process per step; {Environment.ProcessorCount} cores"));
        output.WriteLine("side by side: each rank's share as an independent process at the same time, no communication (what sharing the machine costs)");
        foreach (var (name, t) in runs)
            output.WriteLine(F($"{name} step ms: {string.Join(" ", t.StepSeconds.Select(Ms))}"));
        if (r.OverheadRatio is double overhead)
        {
            output.WriteLine(F($"strong scaling (global batch {r.Single.GlobalBatch}, {r.Single.ThreadsPerRank} threads in all): {r.Parallel!.World} ranks vs one process {Pct(overhead)} % (target ≤ {OverheadTarget * 100:0} %: {Met(overhead)})"));
            if (r.WeakOverheadRatio is double weak)
            {
                output.WriteLine(F($"weak scaling (DDP's definition: batch {r.Alone!.RankBatch} and {r.Alone.ThreadsPerRank} thread(s) per rank): {r.Parallel.World} ranks vs one rank alone {Pct(weak)} % (target ≤ {OverheadTarget * 100:0} %: {Met(weak)})"));
                output.WriteLine(F($"  sharing the machine (side by side vs alone, no communication): {Pct(r.ContentionRatio!.Value)} %"));
                output.WriteLine(F($"  data parallelism (data parallel vs side by side): {Pct(r.CommunicationRatio!.Value)} %"));
            }
            RenderBreakdown(r, output);
        }
        else
            output.WriteLine("overhead: not measured (one rank: two ranks on CUDA need two GPUs, device=0,1)");

        var reduce = new Table().Border(TableBorder.Simple).AddColumn("backend").AddColumn(new TableColumn("ranks").RightAligned())
            .AddColumn(new TableColumn("MB").RightAligned()).AddColumn(new TableColumn("ms").RightAligned())
            .AddColumn(new TableColumn("algbw GB/s").RightAligned()).AddColumn(new TableColumn("busbw GB/s").RightAligned());
        foreach (AllReduceTiming t in r.SingleRankAllReduce.Concat(r.AllReduce))
            reduce.AddRow(t.Backend, I(t.World), F($"{t.Bytes / 1e6:0.00}"), Ms(t.Seconds), F($"{t.AlgBytesPerSecond / 1e9:0.00}"),
                t.World > 1 ? F($"{t.BusBytesPerSecond / 1e9:0.00}") : "-");
        output.Write(reduce);
        output.WriteLine("all-reduce: Average of float32 ones, median of 5 after one untimed; busbw = 2(W-1)/W · bytes / time");

        output.WriteLine(F($"scaling model, {options.PredictWorld} GPUs (ring all-reduce, 25 MiB buckets):"));
        if (r.Prediction is { } p)
        {
            output.WriteLine(F($"  compute per step {Ms(p.Compute.Total)} ms (forward {Ms(p.Compute.Forward)}, backward {Ms(p.Compute.Backward)}, optimiser {Ms(p.Compute.Optimizer)})"));
            output.WriteLine(F($"  all-reduce per step {Ms(p.AllReduceSeconds)} ms ({string.Join(" + ", p.BucketSeconds.Select(Ms))})"));
            output.WriteLine(F($"  no overlap: step {Ms(p.SerialStep)} ms, efficiency {p.SerialEfficiency * 100:0.0} %"));
            output.WriteLine(F($"  overlap with backward: step {Ms(p.OverlappedStep)} ms, efficiency {p.OverlappedEfficiency * 100:0.0} %"));
            double best = Math.Max(p.SerialEfficiency, p.OverlappedEfficiency);
            output.WriteLine(F($"  target ≥ {EfficiencyTarget * 100:0} %: {(best >= EfficiencyTarget ? "met" : "not met")}"));
        }
        foreach (string note in r.Assumptions) output.WriteLine("  assumes: " + note);
    }

    // Where each process's step goes (means, so the parts add up to the mean step).
    static void RenderBreakdown(DdpBenchmarkResult r, IAnsiConsole output)
    {
        var table = new Table().Border(TableBorder.Simple).AddColumn("run").AddColumn(new TableColumn("rank").RightAligned())
            .AddColumn(new TableColumn("step ms").RightAligned()).AddColumn(new TableColumn("compute").RightAligned())
            .AddColumn(new TableColumn("copies").RightAligned()).AddColumn(new TableColumn("wait").RightAligned())
            .AddColumn(new TableColumn("transfer").RightAligned());
        foreach (var (name, t) in new[] { ("alone", r.Alone), ("side by side", r.SideBySide), ("data parallel", r.Parallel) })
            foreach (RankBreakdown b in t?.Ranks ?? Array.Empty<RankBreakdown>())
                table.AddRow(name, I(b.Rank), Ms(b.StepSeconds), Ms(b.ComputeSeconds), Ms(b.CopySeconds), Ms(b.WaitSeconds), Ms(b.TransferSeconds));
        output.WriteLine("breakdown (means over the timed steps; step = compute + copies + wait + transfer):");
        output.Write(table);
        var parallel = r.Parallel!;
        if (parallel.Ranks.Count == 0 || parallel.Ranks[0].Collectives.Count == 0) return;
        foreach (int c in Enumerable.Range(0, parallel.Ranks[0].Collectives.Count))
        {
            string name = parallel.Ranks[0].Collectives[c].Name;
            output.WriteLine(F($"  {name}: wait {string.Join(" / ", parallel.Ranks.Select(b => Ms(b.Collectives[c].WaitSeconds)))} ms, transfer {string.Join(" / ", parallel.Ranks.Select(b => Ms(b.Collectives[c].TransferSeconds)))} ms (rank 0 / 1 …)"));
        }
        output.WriteLine("  gradients are all-reduced in place in the flat gradient buffers (no copies); " +
                           "compute = forward, loss, backward, clipping, SGD, EMA; wait = until the last rank arrives (skew); transfer = the rest of the collective");
    }

    static string Pct(double ratio) => (ratio * 100).ToString("+0.0;-0.0", CultureInfo.InvariantCulture);

    static string Met(double overhead) => overhead <= OverheadTarget ? "met" : "not met";

    static string I(int value) => value.ToString(CultureInfo.InvariantCulture);

    static string Ms(double seconds) => (seconds * 1e3).ToString("0.00", CultureInfo.InvariantCulture);

    static string F(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>A rank's progress: rank 0's lines on stdout (through mpirun to the launcher), the others quiet.</summary>
    sealed class LineProgress(bool master) : IProgress<string>
    {
        public void Report(string value) { if (master) Console.Out.WriteLine(value); }
    }
}

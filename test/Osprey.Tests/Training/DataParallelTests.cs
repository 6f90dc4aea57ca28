using System.Globalization;
using System.Text.Json;
using Osprey.Cli;
using Osprey.Config;
using Osprey.Data;
using Osprey.Distributed;
using Osprey.Evaluation;
using Osprey.Models;
using Osprey.Tests.Distributed;
using Osprey.Tests.Models;
using Osprey.Training;
using Spectre.Console;
using Xunit.Abstractions;

namespace Osprey.Tests.Training;

/// <summary>
/// Data-parallel training on CPU ranks (mpirun): W ranks are the one-process run over the whole batch, sharded
/// validation is the one-process validation, a dead rank ends the job, and max_restarts resumes it exactly.
/// </summary>
[Collection("multi-process")]
public class DataParallelTests(ITestOutputHelper log)
{
    static readonly ShapesOptions Shapes = new(ImageSize: 64, TrainImages: 24, ValImages: 8, Seed: 3);

    static string CliDll => Path.Combine(AppContext.BaseDirectory, "Osprey.Cli.dll");

    static (string Dir, string Data, string Model) Setup()
    {
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(Shapes, dir);
        string model = Path.Combine(dir, "tiny.yaml");
        File.WriteAllText(model, TestModels.TinyYaml());
        return (dir, data, model);
    }

    static OspreyArgs Args(IEnumerable<string> tokens) => ArgsParser.Parse(tokens.ToArray());

    // One rank per core: two ranks × two torch threads on two cores only slow each other down.
    static readonly Dictionary<string, string> RankEnvironment = new() { ["OMP_NUM_THREADS"] = "1" };

    DistributedLaunchResult Launch(IEnumerable<string> tokens, Dictionary<string, string>? environment = null)
    {
        WorkerRunner.RequireMpirun();
        var output = new List<string>();
        var result = DistributedLaunch.RunAsync(Args(tokens), LocalLauncher.DotnetHost, new[] { CliDll, "train" },
            line => { lock (output) output.Add(line.Text); }, environment ?? RankEnvironment).GetAwaiter().GetResult();
        log.WriteLine($"exit {result.ExitCode}, restarts {result.Restarts}, {result.Elapsed.TotalSeconds:0.0} s");
        lock (output) log.WriteLine(string.Join('\n', output.TakeLast(40)));
        return result;
    }

    static Dictionary<string, float[]> Weights(string path) =>
        ModelFactory.Create(path).state_dict().ToDictionary(kv => kv.Key, kv => Osprey.Runtime.HostCopy.Floats(kv.Value));

    static double MaxDifference(Dictionary<string, float[]> a, Dictionary<string, float[]> b, out string worst)
    {
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        double max = 0;
        worst = "";
        foreach (string key in a.Keys)
            for (int i = 0; i < a[key].Length; i++)
            {
                double d = Math.Abs(a[key][i] - b[key][i]);
                if (d > max) (max, worst) = (d, key);
            }
        return max;
    }

    [Fact]
    public void TwoRanksWithSyncBnEqualOneProcessWithTheWholeBatch()
    {
        var (dir, data, model) = Setup();
        // 24 images, batch 8, nbs 8: 3 batches, every batch an optimiser step; mosaic, flips, warmup all on.
        string[] common = { $"data={data}", $"model={model}", "epochs=1", "imgsz=64", "batch=8", "nbs=8", "workers=1",
            "device=cpu", $"project={dir}", "sync_bn=True", "plots=False" };
        var one = new Trainer(Args(common.Append("name=one"))).Train();
        var two = Launch(common.Append("name=two").Append("nproc=2"));
        Assert.Equal(0, two.ExitCode);

        double diff = MaxDifference(Weights(one.LastWeights), Weights(Path.Combine(two.RunDirectory, "weights", "last.safetensors")), out string worst);
        log.WriteLine($"max |one − two| over parameters and BN statistics: {diff:E2} ({worst})");
        Assert.True(diff < 1e-5, $"{worst} differs by {diff:E2}");

        var rowOne = ResultsCsv.Read(Path.Combine(one.RunDirectory, "results.csv")).Single();
        var rowTwo = ResultsCsv.Read(Path.Combine(two.RunDirectory, "results.csv")).Single();
        foreach (string column in new[] { "train/box_loss", "train/cls_loss", "train/dfl_loss", "val/box_loss", "lr/pg0" })
            Assert.True(Math.Abs(rowOne[column] - rowTwo[column]) <= 1e-4 * Math.Max(1, Math.Abs(rowOne[column])),
                $"{column}: {rowOne[column]} vs {rowTwo[column]}");
        // only rank 0 writes: one results row, one args.yaml, one TensorBoard file
        Assert.Single(Directory.GetFiles(two.RunDirectory, "events.out.tfevents.*"));

        // The step-time breakdown has an all-reduce phase under data parallel only.
        var timesOne = StepTimesCsv.Read(Path.Combine(one.RunDirectory, StepTimesCsv.FileName)).Single();
        var timesTwo = StepTimesCsv.Read(Path.Combine(two.RunDirectory, StepTimesCsv.FileName)).Single();
        log.WriteLine($"all-reduce ms/step: one {timesOne["allreduce_ms"]}, two {timesTwo["allreduce_ms"]}");
        Assert.Equal(0, timesOne["allreduce_ms"]);
        Assert.True(timesTwo["allreduce_ms"] > 0, "two ranks reported no all-reduce time");
        Assert.Equal(3, timesTwo["steps"]);
    }

    /// <summary>
    /// Trains <paramref name="model"/> for one epoch in one process and on two ranks (sync_bn, global batch 8) and asserts
    /// that the weights and BN statistics agree within 1e-5 and each of <paramref name="columns"/> within 1e-4 (relative);
    /// returns the one-process run's last weights.
    /// </summary>
    string AssertTwoRanksEqualOneProcess(string dir, string data, string model, string[] columns, params string[] extra)
    {
        string[] common = new[] { $"data={data}", $"model={model}", "epochs=1", "imgsz=64", "batch=8", "nbs=8", "workers=1",
            "device=cpu", $"project={dir}", "sync_bn=True", "plots=False" }.Concat(extra).ToArray();
        var one = new Trainer(Args(common.Append("name=one"))).Train();
        var two = Launch(common.Append("name=two").Append("nproc=2"));
        Assert.Equal(0, two.ExitCode);

        double diff = MaxDifference(Weights(one.LastWeights), Weights(Path.Combine(two.RunDirectory, "weights", "last.safetensors")), out string worst);
        log.WriteLine($"{model}: max |one − two| over parameters and BN statistics: {diff:E2} ({worst})");
        Assert.True(diff < 1e-5, $"{worst} differs by {diff:E2}");
        var rowOne = ResultsCsv.Read(Path.Combine(one.RunDirectory, "results.csv")).Single();
        var rowTwo = ResultsCsv.Read(Path.Combine(two.RunDirectory, "results.csv")).Single();
        foreach (string column in columns)
            Assert.True(Math.Abs(rowOne[column] - rowTwo[column]) <= 1e-4 * Math.Max(1, Math.Abs(rowOne[column])),
                $"{column}: {rowOne[column]} vs {rowTwo[column]}");
        return one.LastWeights;
    }

    /// <summary>
    /// Distillation under data parallel: each rank runs its own teacher; dis_loss is divided by the teacher-score sums over
    /// the global batch, so two ranks train the student (and projector) as one process over the whole batch.
    /// </summary>
    [Fact]
    public void TwoRanksEqualOneProcessWithDistillation()
    {
        var (dir, data, model) = Setup();
        string teacher = DistillationTests.TeacherWeights(dir);
        AssertTwoRanksEqualOneProcess(dir, data, model, new[] { "train/box_loss", "train/cls_loss", "train/dis_loss", "val/box_loss" },
            $"distill_model={teacher}");
    }

    /// <summary>
    /// YOLOv10's end-to-end loss under data parallel: each branch is divided by its own target-score sum over the global
    /// batch (two sums over the ranks per step), so two ranks train exactly as one process over the whole batch.
    /// </summary>
    [Fact]
    public void TwoRanksEqualOneProcessForTheEndToEndHead()
    {
        var (dir, data, _) = Setup();
        string model = Path.Combine(dir, "tiny-v10.yaml");
        File.WriteAllText(model, V10Models.TinyYaml(80));
        AssertTwoRanksEqualOneProcess(dir, data, model,
            new[] { "train/box_loss", "train/cls_loss", "train/dfl_loss", "val/box_loss", "val/cls_loss", "val/dfl_loss" });
    }

    /// <summary>
    /// YOLO11n itself (C3k2, C2PSA's attention with its BatchNorms under SyncBatchNorm, the legacy=False head): two ranks
    /// train exactly as one process over the whole batch, as YOLOv8 does.
    /// </summary>
    [Fact]
    public void TwoRanksEqualOneProcessForYolo11n()
    {
        var (dir, data, _) = Setup();
        string weights = AssertTwoRanksEqualOneProcess(dir, data, "yolo11n.yaml",
            new[] { "train/box_loss", "train/cls_loss", "train/dfl_loss", "val/box_loss" });
        Assert.Contains(Weights(weights).Keys, k => k == "model.10.m.0.attn.qkv.bn.running_mean");
    }

    [Fact]
    public void ForcedBackendAtWorldOneRunsEveryCollectiveAndChangesNoBit()
    {
        // OSPREY_PROCESS_GROUP=mpi under mpirun -np 1: the data-parallel path (broadcasts, loss normaliser and gradient
        // all-reduces, sharded validation) on one rank, as OSPREY_PROCESS_GROUP=nccl checks NCCL on one GPU. Reducing
        // over one rank is exact (Σ of one value, ÷ 1), so the weights must equal the plain run's bit for bit, and the
        // step times must show the all-reduces that the plain run does not make.
        WorkerRunner.RequireMpirun();
        var (dir, data, model) = Setup();
        string[] common = { "train", $"data={data}", $"model={model}", "epochs=1", "imgsz=64", "batch=8", "nbs=8", "workers=1",
            "device=cpu", $"project={dir}", "plots=False" };
        (string Run, string Text) Run(string name, string backend)
        {
            var options = LaunchOptions.ForDotnetDll(1, CliDll, common.Append($"name={name}")) with
            {
                Environment = new Dictionary<string, string> { ["OMP_NUM_THREADS"] = "1", [ProcessGroupFactory.BackendVariable] = backend },
                Timeout = TimeSpan.FromMinutes(3),
            };
            LaunchResult result = LocalLauncher.RunAsync(options).GetAwaiter().GetResult();
            log.WriteLine($"{name} ({ProcessGroupFactory.BackendVariable}={backend}): exit {result.ExitCode}\n{string.Join('\n', result.Output.TakeLast(12).Select(l => l.Text))}");
            Assert.Equal(0, result.ExitCode);
            return (Path.Combine(dir, name), result.Text);
        }
        var plain = Run("plain", "auto");
        var forced = Run("forced", "mpi");
        Assert.Contains("data parallel: 1 rank(s), mpi process group", forced.Text);
        Assert.DoesNotContain("data parallel:", plain.Text);

        var a = Weights(Path.Combine(plain.Run, "weights", "last.safetensors"));
        var b = Weights(Path.Combine(forced.Run, "weights", "last.safetensors"));
        Assert.Equal(0, MaxDifference(a, b, out string worst));
        var rowPlain = ResultsCsv.Read(Path.Combine(plain.Run, "results.csv")).Single();
        var rowForced = ResultsCsv.Read(Path.Combine(forced.Run, "results.csv")).Single();
        foreach (string column in rowPlain.Keys.Where(k => k != "time"))
            Assert.True(rowPlain[column] == rowForced[column], $"{column}: {rowPlain[column]} vs {rowForced[column]} ({worst})");
        var timesPlain = StepTimesCsv.Read(Path.Combine(plain.Run, StepTimesCsv.FileName)).Single();
        var timesForced = StepTimesCsv.Read(Path.Combine(forced.Run, StepTimesCsv.FileName)).Single();
        Assert.Equal(0, timesPlain["allreduce_ms"]);
        Assert.True(timesForced["allreduce_ms"] > 0, "the forced group reported no all-reduce time");
    }

    [Fact]
    public void WithoutSyncBnTheRanksStillAgreeAndDiffersFromSyncBn()
    {
        // Local BN statistics (DDP's default) are a different computation: the equivalence above is not vacuous.
        var (dir, data, model) = Setup();
        string[] common = { $"data={data}", $"model={model}", "epochs=1", "imgsz=64", "batch=8", "nbs=8", "workers=1",
            "device=cpu", $"project={dir}", "plots=False", "val=False" };
        var one = new Trainer(Args(common.Append("name=one"))).Train();
        var two = Launch(common.Append("name=two").Append("nproc=2"));
        Assert.Equal(0, two.ExitCode);
        double diff = MaxDifference(Weights(one.LastWeights), Weights(Path.Combine(two.RunDirectory, "weights", "last.safetensors")), out string worst);
        log.WriteLine($"without sync_bn: max |one − two| {diff:E2} ({worst})");
        Assert.True(diff > 1e-4, $"local BatchNorm statistics should change the run (max difference {diff:E2})");
    }

    [Fact]
    public void ShardedValidationEqualsOneProcessValidation()
    {
        var (dir, data, yaml) = Setup();
        // An untrained model with randomised BatchNorms and conf 0 keeps many boxes per image to merge across shards.
        var detector = TestModels.Tiny(ShapesDataset.Names.Count);
        TestModels.RandomiseBatchNorms(detector, seed: 5);
        string weights = Path.Combine(dir, "random.safetensors");
        ModelWeights.Save(detector, weights);
        // Per-image outputs must be bit-identical for an exact comparison: every forward runs 3 images on one thread (the
        // one-process reference with batch 3 under mpirun -np 1, each of 2 ranks a global batch of 6). The validation
        // losses depend on the global batches, so they are compared with a one-process run at batch 6.
        JsonElement Validate(int world, int globalBatch)
        {
            string folder = WorkerRunner.TempFolder("val");
            string? threads = Environment.GetEnvironmentVariable("OMP_NUM_THREADS");
            Environment.SetEnvironmentVariable("OMP_NUM_THREADS", "1");
            try
            {
                LaunchResult run = WorkerRunner.Run(world, "validate", folder,
                    extra: new[] { data, weights, "64", globalBatch.ToString(CultureInfo.InvariantCulture), "0" });
                log.WriteLine(run.Text);
                Assert.Equal(0, run.ExitCode);
            }
            finally
            {
                Environment.SetEnvironmentVariable("OMP_NUM_THREADS", threads);
            }
            var results = Enumerable.Range(0, world).Select(r => WorkerRunner.ReadRank(folder, r)).ToArray();
            foreach (var other in results.Skip(1))                                                             // every rank agrees
                foreach (string key in new[] { "metrics", "perClass", "confusion", "losses", "predictions" })
                    Assert.Equal(results[0].GetProperty(key).ToString(), other.GetProperty(key).ToString());
            return results[0];
        }
        JsonElement expected = Validate(1, 3), expectedLosses = Validate(1, 6), sharded = Validate(2, 6);
        log.WriteLine($"one process: {expected}\ntwo ranks: {sharded}");
        // note: an untrained 64 px model finds no true positive (mAP 0); the check still covers every detection, score
        // and confusion count of both shards, the image and instance counts and the global-batch validation losses.
        Assert.True(expected.GetProperty("predictions").GetInt32() >= 100, $"{expected.GetProperty("predictions")} predictions");
        foreach (string key in new[] { "metrics", "perClass", "confusion", "images", "instances", "predictions" })
            Assert.Equal(expected.GetProperty(key).ToString(), sharded.GetProperty(key).ToString());
        double[] a = expectedLosses.GetProperty("losses").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        double[] b = sharded.GetProperty("losses").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        for (int j = 0; j < 3; j++) Assert.True(Math.Abs(a[j] - b[j]) <= 1e-5 * Math.Abs(a[j]), $"loss {j}: {a[j]} vs {b[j]}");
    }

    [Fact]
    public void KilledRankEndsTheJobAndMaxRestartsResumesToTheUninterruptedWeights()
    {
        var (dir, data, model) = Setup();
        // 2 epochs × 3 steps, a step checkpoint after every step; rank 1 SIGKILLs itself at iteration 4 (epoch 2, batch 2).
        string[] common = { $"data={data}", $"model={model}", "epochs=2", "imgsz=64", "batch=8", "nbs=8", "workers=1",
            "device=cpu", $"project={dir}", "nproc=2", "save_period_steps=1", "plots=False" };
        var straight = Launch(common.Append("name=straight"));
        Assert.Equal(0, straight.ExitCode);

        // osprey train … nproc=2 (the CLI), no restarts: the job fails, every rank exits, the failed rank is named.
        string marker = Path.Combine(dir, "killed-once");
        Environment.SetEnvironmentVariable(Trainer.FaultVariable, $"1:4:{marker}");
        var errors = new StringWriter();
        int exit;
        try
        {
            exit = new CliApp(AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(TextWriter.Null) }), errors)
                .Run(common.Append("name=killed").Prepend("train").ToArray());
        }
        finally
        {
            Environment.SetEnvironmentVariable(Trainer.FaultVariable, null);
        }
        double detection = (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - long.Parse(File.ReadAllText(marker), CultureInfo.InvariantCulture)) / 1000.0;
        log.WriteLine($"exit {exit}; kill → job over {detection:0.00} s; {errors}");
        Assert.NotEqual(0, exit);
        Assert.True(detection < 60, $"the job took {detection:0.0} s to end after the kill");
        Assert.Contains("rank 1", errors.ToString());

        // Same fault with max_restarts=1: relaunched from the newest step checkpoint, it ends with the straight run's weights.
        string marker2 = Path.Combine(dir, "killed-once-2");
        var restarted = Launch(common.Append("name=restarted").Append("max_restarts=1"),
            new Dictionary<string, string>(RankEnvironment) { [Trainer.FaultVariable] = $"1:4:{marker2}" });
        Assert.True(File.Exists(marker2), "the fault did not fire");
        Assert.Equal(0, restarted.ExitCode);
        Assert.Equal(1, restarted.Restarts);
        var a = Weights(Path.Combine(straight.RunDirectory, "weights", "last.safetensors"));
        var b = Weights(Path.Combine(restarted.RunDirectory, "weights", "last.safetensors"));
        foreach (string key in a.Keys) Assert.True(a[key].AsSpan().SequenceEqual(b[key]), $"{key} differs after the restart");
        var rowsA = ResultsCsv.Read(Path.Combine(straight.RunDirectory, "results.csv"));
        var rowsB = ResultsCsv.Read(Path.Combine(restarted.RunDirectory, "results.csv"));
        Assert.Equal(2, rowsB.Count);
        foreach (string column in new[] { "train/box_loss", "train/cls_loss", "metrics/mAP50-95(B)" })
            Assert.Equal(rowsA[1][column], rowsB[1][column]);
    }
}

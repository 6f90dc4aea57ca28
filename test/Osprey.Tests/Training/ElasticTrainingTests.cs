using Osprey.Cli;
using Osprey.Config;
using Osprey.Data;
using Osprey.Distributed;
using Osprey.Models;
using Osprey.Tests.Distributed;
using Osprey.Tests.Models;
using Osprey.Training;
using Xunit.Abstractions;

namespace Osprey.Tests.Training;

/// <summary>
/// Elastic training (docs/distributed.md, "Elastic training"): a run resumed at another world size continues the
/// uninterrupted run, the epoch's tail is the same at every world size (a rank may have no share of the last batch), and
/// with <c>min_ranks</c> a job whose rank is lost for good continues on the survivors from the newest checkpoint.
/// </summary>
[Collection("multi-process")]
public class ElasticTrainingTests(ITestOutputHelper log)
{
    // 25 images: with batch 8 the epoch is 8, 8, 8, 1 (on 2 ranks rank 1's share of the last batch is empty), with batch
    // 6 it is 6, 6, 6, 6, 1 (empty shares on 2 and on 3 ranks). 25 is odd: PyTorch's padding would repeat a sample.
    static readonly ShapesOptions Shapes = new(ImageSize: 64, TrainImages: 25, ValImages: 8, Seed: 3);

    static string CliDll => Path.Combine(AppContext.BaseDirectory, "Osprey.Cli.dll");

    static readonly Dictionary<string, string> RankEnvironment = new() { ["OMP_NUM_THREADS"] = "1" };

    static (string Dir, string[] Common) Setup(int batch, int epochs = 2)
    {
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(Shapes, dir);
        string model = Path.Combine(dir, "tiny.yaml");
        File.WriteAllText(model, TestModels.TinyYaml());
        return (dir, new[] { $"data={data}", $"model={model}", $"epochs={epochs}", "imgsz=64", $"batch={batch}", $"nbs={batch}", "workers=1",
            "device=cpu", $"project={dir}", "sync_bn=True", "plots=False", "val=False", "save_period_steps=1" });
    }

    static OspreyArgs Args(IEnumerable<string> tokens) => ArgsParser.Parse(tokens.ToArray());

    DistributedLaunchResult Launch(IEnumerable<string> tokens, Dictionary<string, string>? faults = null)
    {
        WorkerRunner.RequireMpirun();
        var output = new List<string>();
        var environment = new Dictionary<string, string>(RankEnvironment);
        foreach (var (k, v) in faults ?? new()) environment[k] = v;
        var result = DistributedLaunch.RunAsync(Args(tokens), LocalLauncher.DotnetHost, new[] { CliDll, "train" },
            line => { lock (output) output.Add(line.Text); }, environment).GetAwaiter().GetResult();
        log.WriteLine($"exit {result.ExitCode}, world {result.World}, restarts {result.Restarts}, {result.Elapsed.TotalSeconds:0.0} s {result.Message}");
        lock (output) log.WriteLine(string.Join('\n', output.Where(l => l.StartsWith("osprey", StringComparison.Ordinal) || l.Contains("elastic")).TakeLast(20)));
        return result;
    }

    static string LastWeights(string runDirectory) => Path.Combine(runDirectory, "weights", "last.safetensors");

    static string LastCheckpoint(string runDirectory) => Path.Combine(runDirectory, "weights", "last.ckpt");

    double AssertClose(string expected, string actual, string what, double tolerance = 1e-5)
    {
        var a = ModelFactory.Create(expected).state_dict().ToDictionary(kv => kv.Key, kv => Osprey.Runtime.HostCopy.Floats(kv.Value));
        var b = ModelFactory.Create(actual).state_dict().ToDictionary(kv => kv.Key, kv => Osprey.Runtime.HostCopy.Floats(kv.Value));
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        double max = 0;
        string worst = "";
        foreach (string key in a.Keys)
            for (int i = 0; i < a[key].Length; i++)
                if (Math.Abs(a[key][i] - b[key][i]) is var d && d > max) (max, worst) = (d, key);
        log.WriteLine($"{what}: max |Δw| over {a.Count} tensors {max:E2} ({worst})");
        Assert.True(max < tolerance, $"{what}: {worst} differs by {max:E2}");
        return max;
    }

    static IReadOnlyDictionary<string, string> SingleWorldChange(string runDirectory)
    {
        string path = Path.Combine(runDirectory, WorldChange.FileName);
        Assert.True(File.Exists(path), $"no {WorldChange.FileName} in {runDirectory}");
        return Assert.Single(WorldChange.Read(path));
    }

    [Fact]
    public void TwoRanksResumedAsOneProcessContinueTheUninterruptedRun()
    {
        var (dir, common) = Setup(batch: 8);
        // The tail: 2 ranks (rank 1 without a share of each epoch's last batch) train as one process.
        var one = new Trainer(Args(common.Append("name=one"))).Train();
        var two = Launch(common.Append("name=two").Append("nproc=2"));
        Assert.Equal(0, two.ExitCode);
        AssertClose(one.LastWeights, LastWeights(two.RunDirectory), "uninterrupted: 1 process vs 2 ranks (global tail)");

        // 2 → 1: two ranks, rank 1 SIGKILLed at iteration 5 (epoch 2, batch 2); resumed as one process.
        string marker = Path.Combine(dir, "killed-2");
        var killed = Launch(common.Append("name=shrink").Append("nproc=2"), new() { [Trainer.FaultVariable] = $"1:5:{marker}" });
        Assert.NotEqual(0, killed.ExitCode);
        Assert.Equal(1, Checkpoint.ReadState(LastCheckpoint(killed.RunDirectory)).Epoch);
        // resume= alone relaunches the checkpoint's world; nproc= given picks another
        Assert.Equal(2, DistributedLaunch.ProcessCount(DistributedLaunch.LaunchArguments(Args(new[] { $"resume={LastCheckpoint(killed.RunDirectory)}" }))));
        Assert.Equal(1, DistributedLaunch.ProcessCount(DistributedLaunch.LaunchArguments(Args(new[] { $"resume={LastCheckpoint(killed.RunDirectory)}", "nproc=1" }))));
        var messages = new List<string>();
        new Trainer(Args(new[] { $"resume={LastCheckpoint(killed.RunDirectory)}", "nproc=1" }),
            e => { if (e is TrainingMessage m) messages.Add(m.Text); }).Train();
        AssertClose(LastWeights(two.RunDirectory), LastWeights(killed.RunDirectory), "2 ranks → 1 process at iteration 5 vs 2 ranks");
        var row = SingleWorldChange(killed.RunDirectory);
        Assert.Equal(("2", "1", "2", "8", "8"), (row["old_world"], row["new_world"], row["epoch"], row["old_batch"], row["new_batch"]));
        Assert.Contains(messages, m => m.StartsWith("elastic resume at epoch 2, batch 1/4: 2 → 1 rank(s), global batch 8 unchanged", StringComparison.Ordinal));
        Assert.Equal(2, ResultsCsv.Read(Path.Combine(killed.RunDirectory, "results.csv")).Count);

    }

    [Fact]
    public void OneProcessResumedOnTwoRanksContinuesTheUninterruptedRun()
    {
        var (dir, common) = Setup(batch: 8);
        var one = new Trainer(Args(common.Append("name=one"))).Train();
        // 1 → 2: one process (under mpirun -np 1) SIGKILLed at iteration 5, resumed on two ranks.
        string marker1 = Path.Combine(dir, "killed-1");
        var killed1 = Launch(common.Append("name=grow").Append("nproc=1"), new() { [Trainer.FaultVariable] = $"0:5:{marker1}" });
        Assert.NotEqual(0, killed1.ExitCode);
        var grown = Launch(new[] { $"resume={LastCheckpoint(killed1.RunDirectory)}", "nproc=2" });
        Assert.Equal(0, grown.ExitCode);
        AssertClose(one.LastWeights, LastWeights(killed1.RunDirectory), "1 process → 2 ranks at iteration 5 vs 1 process");
        var row = SingleWorldChange(killed1.RunDirectory);
        Assert.Equal(("1", "2", "resumed on 2 rank(s)"), (row["old_world"], row["new_world"], row["reason"]));
    }

    [Fact]
    public void ARankLostForGoodContinuesOnTheSurvivorsDownToMinRanks()
    {
        var (dir, common) = Setup(batch: 6, epochs: 1);
        var three = common.Append("nproc=3").Append("max_restarts=1").ToArray();
        // Rank 2 is SIGKILLed at iteration 2 (batch 3 of 5) and from then on dies at start on every launch.
        Dictionary<string, string> Faults(string marker) => new()
        {
            [Trainer.FaultVariable] = $"2:2:{marker}", [FaultInjection.LostVariable] = $"2:{marker}",
        };

        // min_ranks=3 (the default: the world): the retry fails too, and the job fails naming the lost rank.
        var strict = Launch(three.Append("name=strict"), Faults(Path.Combine(dir, "lost-strict")));
        Assert.NotEqual(0, strict.ExitCode);
        Assert.Equal((1, 2, 3), (strict.Restarts, strict.FailedRank ?? -1, strict.World));
        Assert.Contains("rank 2 is lost", strict.Message);
        Assert.Contains("min_ranks=3", strict.Message);
        // The reference: that run continued on 2 ranks from its newest checkpoint.
        string checkpoint = LastCheckpoint(strict.RunDirectory);
        Assert.Equal((0, 2, 3), (Checkpoint.ReadState(checkpoint).Epoch, Checkpoint.ReadState(checkpoint).BatchInEpoch, Checkpoint.ReadState(checkpoint).World));
        Assert.Equal(0, Launch(new[] { $"resume={checkpoint}", "nproc=2" }).ExitCode);

        // min_ranks=2: the job leaves rank 2 behind and finishes on 2 ranks by itself.
        var elastic = Launch(three.Append("name=elastic").Append("min_ranks=2"), Faults(Path.Combine(dir, "lost-elastic")));
        Assert.Equal(0, elastic.ExitCode);
        Assert.Equal((2, 2), (elastic.World, elastic.Restarts));
        AssertClose(LastWeights(strict.RunDirectory), LastWeights(elastic.RunDirectory), "3 → 2 ranks (min_ranks=2) vs 2 ranks from that step");
        var row = SingleWorldChange(elastic.RunDirectory);
        Assert.Equal(("3", "2", "1", "2"), (row["old_world"], row["new_world"], row["epoch"], row["batch_in_epoch"]));
        Assert.Contains("rank 2 is lost", row["reason"]);
        Assert.Single(ResultsCsv.Read(Path.Combine(elastic.RunDirectory, "results.csv")));

        // …and as one process that was never interrupted (every world trains the same global batches).
        var one = new Trainer(Args(common.Append("name=one"))).Train();
        AssertClose(one.LastWeights, LastWeights(elastic.RunDirectory), "3 → 2 ranks vs 1 process uninterrupted");
    }

    /// <summary>Ends a run with an exception after the step of <paramref name="iteration"/> (its checkpoint written).</summary>
    sealed class FailAfter(long iteration) : ITrainingCallback
    {
        public void On(TrainingEvent e, TrainingRun run)
        {
            if (e is BatchFinished b && b.Iteration == iteration) throw new OperationCanceledException($"stopped after iteration {iteration}");
        }
    }

    /// <summary>What the resumed run starts with.</summary>
    sealed class Resumed : ITrainingCallback
    {
        public double MaxWeightDecay;
        public int Accumulate, BatchesPerEpoch;
        public long FirstIteration = -1;
        public int FirstBatch = -1;

        public void On(TrainingEvent e, TrainingRun run)
        {
            if (e is TrainingStarted)
                (MaxWeightDecay, Accumulate, BatchesPerEpoch) = (run.Optimizer.Optimizer.Groups.Max(g => g.WeightDecay), run.Schedule.Accumulate, run.BatchesPerEpoch);
            if (e is BatchFinished b && FirstIteration < 0) (FirstIteration, FirstBatch) = (b.Iteration, b.Batch);
        }
    }

    [Fact]
    public void ResumingWithAnotherGlobalBatchFollowsUltralyticsRulesAndSaysSo()
    {
        var (_, common) = Setup(batch: 8);
        // batch 8 with nbs 12: accumulate round(1.5) = 2, weight decay 0.0005·8·2/12; stopped after iteration 4 (epoch 2, batch 1)
        var tokens = common.Select(t => t == "nbs=8" ? "nbs=12" : t).Append("name=rebatch").Append("sync_bn=False").ToArray();
        Assert.Throws<OperationCanceledException>(() => new Trainer(Args(tokens)).Add(new FailAfter(4)).Train());
        string checkpoint = LastCheckpoint(Path.Combine(tokens.Single(t => t.StartsWith("project=", StringComparison.Ordinal))[8..], "rebatch"));
        Assert.Equal((1, 1, 8), (Checkpoint.ReadState(checkpoint).Epoch, Checkpoint.ReadState(checkpoint).BatchInEpoch, Checkpoint.ReadState(checkpoint).Batch));

        // resumed with batch=4: accumulate round(12/4) = 3, weight decay 0.0005·4·3/12, 7 batches an epoch; the 8 samples
        // done are 2 batches of 4, so the run goes on at batch 3 of epoch 2 (iteration 7 + 2).
        var messages = new List<string>();
        var resumed = new Resumed();
        new Trainer(Args(new[] { $"resume={checkpoint}", "batch=4" }), e => { if (e is TrainingMessage m) messages.Add(m.Text); })
            .Add(resumed).Train();
        log.WriteLine(string.Join('\n', messages));
        Assert.Equal(0.0005 * 4 * 3 / 12, resumed.MaxWeightDecay, 12);
        Assert.Equal((3, 7, 9L, 2), (resumed.Accumulate, resumed.BatchesPerEpoch, resumed.FirstIteration, resumed.FirstBatch));
        Assert.Contains(messages, m => m.Contains("1 → 1 rank(s), global batch 8 → 4 (Ultralytics' rules for nbs=12: accumulate 2 → 3, weight_decay 0.0006667 → 0.0005", StringComparison.Ordinal));
        string run = Path.GetDirectoryName(Path.GetDirectoryName(checkpoint))!;
        var row = SingleWorldChange(run);
        Assert.Equal(("8", "4", "resumed with batch=4"), (row["old_batch"], row["new_batch"], row["reason"]));
        Assert.Equal(4, Checkpoint.ReadState(checkpoint).Batch);
        Assert.Equal(2, ResultsCsv.Read(Path.Combine(run, "results.csv")).Count);
    }

    /// <summary>A rank's empty share of the last batch also goes through distillation, the end-to-end head and gpu_augment.</summary>
    [Theory]
    [InlineData("distill")]
    [InlineData("v10")]
    [InlineData("gpu_augment")]
    public void EmptySharesOfTheTailTrainAsOneProcess(string variant)
    {
        var (dir, common) = Setup(batch: 8);
        string extra = variant switch
        {
            "distill" => $"distill_model={DistillationTests.TeacherWeights(dir)}",
            "v10" => $"model={Path.Combine(dir, "tiny-v10.yaml")}",
            _ => "gpu_augment=True",
        };
        File.WriteAllText(Path.Combine(dir, "tiny-v10.yaml"), V10Models.TinyYaml(80));
        var tokens = common.Where(t => !(variant == "v10" && t.StartsWith("model=", StringComparison.Ordinal)))
            .Select(t => t == "epochs=2" ? "epochs=1" : t).Append(extra).ToArray();
        var one = new Trainer(Args(tokens.Append("name=one"))).Train();
        var two = Launch(tokens.Append("name=two").Append("nproc=2"));
        Assert.Equal(0, two.ExitCode);
        AssertClose(one.LastWeights, LastWeights(two.RunDirectory), $"{variant}: 1 process vs 2 ranks, rank 1 without a share of the last batch");
        var rowOne = ResultsCsv.Read(Path.Combine(one.RunDirectory, "results.csv")).Single();
        var rowTwo = ResultsCsv.Read(Path.Combine(two.RunDirectory, "results.csv")).Single();
        foreach (string column in rowOne.Keys.Where(c => c.StartsWith("train/", StringComparison.Ordinal)))
            Assert.True(Math.Abs(rowOne[column] - rowTwo[column]) <= 1e-4 * Math.Max(1, Math.Abs(rowOne[column])), $"{column}: {rowOne[column]} vs {rowTwo[column]}");
    }

    [Fact]
    public void ArgsSchemaHasMinRanksAndTheLauncherShrinksToAWorldThatSplitsTheBatch()
    {
        Assert.Equal(0, new OspreyArgs().MinRanks);
        Assert.Equal(2, Args(new[] { "min_ranks=2" }).MinRanks);
        Assert.Contains("min_ranks: 2", ArgsYaml.Serialize(Args(new[] { "min_ranks=2" })));
        Assert.Equal(2, DistributedLaunch.Survivors(3, 2, 6));
        Assert.Equal(2, DistributedLaunch.Survivors(4, 1, 8));   // 3 does not split 8
        Assert.Equal(0, DistributedLaunch.Survivors(4, 3, 8));
        Assert.Equal(0, DistributedLaunch.Survivors(3, 3, 6));
    }
}

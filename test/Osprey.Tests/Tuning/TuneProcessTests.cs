using System.Diagnostics;
using System.Globalization;
using Osprey.Config;
using Osprey.Data;
using Osprey.Tests.Models;
using Osprey.Training;
using Osprey.Tuning;
using Xunit.Abstractions;

namespace Osprey.Tests.Tuning;

/// <summary>
/// <c>osprey tune</c> end to end, the command line in a process of its own, with real <c>osprey train</c> trials on a
/// tiny shapes set (24 training images of 64 px, a 1/16-width YOLOv8): trials as processes, a crash recorded as failed,
/// Ultralytics' outputs, a killed tuner resumed to the same trials, and trials as Slurm job steps.
/// </summary>
[Collection("multi-process")]
public class TuneProcessTests(ITestOutputHelper log)
{
    static string CliDll => Path.Combine(AppContext.BaseDirectory, "Osprey.Cli.dll");

    static (string Dir, string[] Common) Setup(string epochs)
    {
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(new ShapesOptions(ImageSize: 64, TrainImages: 24, ValImages: 8, Seed: 3), dir);
        string model = Path.Combine(dir, "tiny.yaml");
        File.WriteAllText(model, TestModels.TinyYaml());
        return (dir, new[] { "tune", $"data={data}", $"model={model}", $"epochs={epochs}", "imgsz=64", "batch=8", "nbs=8", "workers=1",
            "plots=False", "device=cpu", $"project={dir}" });
    }

    static Process Start(string dir, IReadOnlyDictionary<string, string> environment, IEnumerable<string> arguments, List<string> output)
    {
        var info = new ProcessStartInfo(Osprey.Distributed.LocalLauncher.DotnetHost)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = dir,
        };
        info.ArgumentList.Add(CliDll);
        foreach (string a in arguments) info.ArgumentList.Add(a);
        foreach (var (k, v) in environment) info.Environment[k] = v;
        var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.Add(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.Add(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    (int Code, string Output) Tune(string dir, IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        var output = new List<string>();
        using var process = Start(dir, environment, arguments, output);
        var clock = Stopwatch.StartNew();
        if (!process.WaitForExit(TimeSpan.FromMinutes(4))) process.Kill(entireProcessTree: true);
        process.WaitForExit();
        string text;
        lock (output) text = string.Join('\n', output);
        log.WriteLine($"exit {process.ExitCode} after {clock.Elapsed.TotalSeconds:0.0} s\n{text}");
        return (process.ExitCode, text);
    }

    static TunerState State(string tuneDir) => TunerState.Load(TunerState.PathIn(tuneDir));

    [Fact]
    public void TrialsRunAsTheirOwnProcessesACrashIsRecordedAsFailedAndTheOutputsAreUltralytics()
    {
        var (dir, common) = Setup("2");
        // the first trial to reach its second batch SIGKILLs itself (Osprey's fault hook, inherited from the tuner)
        var environment = new Dictionary<string, string> { [Trainer.FaultVariable] = $"0:1:{Path.Combine(dir, "crashed")}" };
        var (code, output) = Tune(dir, environment, common.Concat(new[] { "search=asha", "iterations=3", "trials_at_once=2", "grace_period=1" }).ToArray());
        Assert.Equal(0, code);
        string tune = Path.Combine(dir, "tune");
        var state = State(tune);
        Assert.Equal(3, state.Trials.Count);
        var failed = Assert.Single(state.Trials, t => t.Status == TrialStatus.Failed);
        Assert.Equal(137, failed.ExitCode);                                   // killed by SIGKILL: 128 + 9
        Assert.Contains("train.log", failed.Note);
        Assert.All(state.Trials.Where(t => t != failed), t => Assert.Equal((TrialStatus.Completed, 2), (t.Status, t.Epochs)));
        Assert.Contains($"trial{failed.Index} failed", output);

        // each trial is a process of its own, with its own run folder, log and hyperparameters
        Assert.Equal(3, state.Trials.Select(t => t.ProcessId).Distinct().Count());
        foreach (var trial in state.Trials)
        {
            Assert.Equal(Path.Combine(tune, "trials", trial.Name), trial.RunDirectory);
            Assert.Contains("tune-trial", File.ReadAllText(Path.Combine(trial.RunDirectory, "train.log")));
            var trained = ArgsYaml.Deserialize(File.ReadAllText(Path.Combine(trial.RunDirectory, "args.yaml")));
            Assert.Equal((trial.Hyperparameters["lr0"], trial.Hyperparameters["box"], (int)trial.Hyperparameters["close_mosaic"]),
                (trained.Lr0, trained.Box, trained.CloseMosaic));
            Assert.Equal((2, 64, 1), (trained.Epochs, trained.Imgsz, trained.Workers));
        }

        // Ultralytics' outputs: tune_results.csv (fitness, then the space's keys; a failed trial at 0), best hyperparameters,
        // the best weights, the plots
        string[] csv = File.ReadAllLines(Path.Combine(tune, "tune_results.csv"));
        Assert.Equal(string.Join(',', SearchSpace.Asha.Keys.Prepend("fitness")), csv[0]);
        Assert.Equal(4, csv.Length);
        Assert.StartsWith("0.0,", csv[1 + failed.Index]);
        Assert.StartsWith("# 3/3 iterations complete", File.ReadAllText(Path.Combine(tune, "best_hyperparameters.yaml")));
        foreach (string file in new[] { "weights/best.safetensors", "weights/last.safetensors", "tune_fitness.png", "tune_scatter_plots.png" })
            Assert.True(File.Exists(Path.Combine(tune, file)), $"{file} missing");
    }

    [Fact]
    public void AKilledTunerResumesToTheSameTrialsAsAnUninterruptedRun()
    {
        var (dir, common) = Setup("3");
        string[] tune = common.Concat(new[] { "search=genetic", "iterations=4", "trials_at_once=2", "seed=3" }).ToArray();
        // 30 ms per training sample: epochs of about a second, time to kill the tuner mid-trial
        var environment = new Dictionary<string, string> { ["OSPREY_FAULT_DATA_DELAY_MS"] = "30" };
        Assert.Equal(0, Tune(dir, environment, tune.Append("name=straight").ToArray()).Code);

        var output = new List<string>();
        using (var tuner = Start(dir, environment, tune.Append("name=killed"), output))
        {
            string killed = Path.Combine(dir, "killed");
            var clock = Stopwatch.StartNew();
            TunerState? seen = null;
            while (clock.Elapsed < TimeSpan.FromMinutes(3) && !tuner.HasExited)
            {
                Thread.Sleep(100);
                if (!File.Exists(TunerState.PathIn(killed))) continue;
                seen = State(killed);
                if (seen.Trials.Any(t => t.Index >= 2 && t.Status == TrialStatus.Running && t.Epochs >= 1)) break;
            }
            Assert.False(tuner.HasExited, "the tuner ended before it could be killed");
            tuner.Kill();                                                         // SIGKILL: no chance to tidy up
            tuner.WaitForExit();
            // the trials it left running end by themselves: their lifeline (standard input) closed with the tuner
            var orphans = seen!.Trials.Where(t => t.Status == TrialStatus.Running).Select(t => t.ProcessId!.Value).ToList();
            Assert.True(SpinWait.SpinUntil(() => orphans.All(p => !Directory.Exists($"/proc/{p}")), TimeSpan.FromSeconds(20)),
                "trials outlived their tuner");
            log.WriteLine($"killed with {string.Join(", ", seen.Trials.Select(t => $"{t.Name} {t.Status} {t.Epochs}"))}");
        }
        var (code, resumedOutput) = Tune(dir, environment, "tune", $"resume={Path.Combine(dir, "killed")}");
        Assert.Equal(0, code);
        Assert.Contains("Tuner: resuming", resumedOutput);

        var straight = State(Path.Combine(dir, "straight"));
        var resumed = State(Path.Combine(dir, "killed"));
        Assert.Equal(4, resumed.Trials.Count);
        Assert.Contains(resumed.Trials, t => t.Launches == 2 && t.Epochs == 3
            && File.ReadAllText(Path.Combine(t.RunDirectory, "train.log")).Contains("Resuming", StringComparison.Ordinal));
        for (int i = 0; i < 4; i++)
        {
            var (a, b) = (straight.Trials[i], resumed.Trials[i]);
            Assert.Equal(a.Hyperparameters, b.Hyperparameters);
            Assert.Equal((a.Status, a.Epochs), (b.Status, b.Epochs));
            Assert.Equal(a.Fitness, b.Fitness);
            // the same training, epoch by epoch: a trial continued from its checkpoint is bit for bit the straight one
            var rowsA = ResultsCsv.Read(Path.Combine(a.RunDirectory, "results.csv"));
            var rowsB = ResultsCsv.Read(Path.Combine(b.RunDirectory, "results.csv"));
            Assert.Equal(rowsA.Count, rowsB.Count);
            foreach (string column in new[] { "train/box_loss", "train/cls_loss", "train/dfl_loss", "val/box_loss", "metrics/mAP50-95(B)", "lr/pg0" })
                Assert.Equal(rowsA.Select(r => r[column]), rowsB.Select(r => r[column]));
        }
        Assert.Equal(File.ReadAllText(Path.Combine(dir, "straight", "tune_results.csv")), File.ReadAllText(Path.Combine(dir, "killed", "tune_results.csv")));
    }

    [Fact]
    public void UnderSlurmEachTrialIsAJobStepOfTheAllocation()
    {
        var (dir, common) = Setup("1");
        // srun's stand-in: records its arguments and the job it was called in, then runs the step's command as srun would
        string bin = Path.Combine(dir, "bin");
        Directory.CreateDirectory(bin);
        string calls = Path.Combine(dir, "srun-calls.txt");
        File.WriteAllText(Path.Combine(bin, "srun"), $"""
            #!/bin/bash
            echo "job=$SLURM_JOB_ID $*" >> "{calls}"
            while [[ $# -gt 0 && "$1" == -* ]]; do shift; done
            export SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 SLURM_STEP_ID=$$
            exec "$@"
            """.ReplaceLineEndings("\n"));
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(Path.Combine(bin, "srun"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var environment = new Dictionary<string, string>
        {
            ["SLURM_JOB_ID"] = "4242", ["SLURM_NTASKS"] = "2", ["SLURM_CPUS_PER_TASK"] = "1", ["SLURM_JOB_NODELIST"] = "node[01-02]",
            ["PATH"] = $"{bin}:{Environment.GetEnvironmentVariable("PATH")}",
        };
        var arguments = common.Where(a => a != "device=cpu").Concat(new[] { "search=genetic", "iterations=2" }).ToArray();
        var (code, output) = Tune(dir, environment, arguments);
        Assert.Equal(0, code);
        Assert.Contains("2 at once on Slurm job steps (srun --exclusive) in job 4242, 1 CPUs per trial (srun 0, srun 1)", output);

        string[] steps = File.ReadAllLines(calls).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(2, steps.Length);
        for (int i = 0; i < 2; i++)
        {
            Assert.StartsWith($"job=4242 --exclusive -N1 -n1 --cpus-per-task=1 --job-name=trial{i} ", steps[i]);
            Assert.Contains($"{CliDll} tune-trial ", steps[i]);
            Assert.Contains($"name=trial{i} exist_ok=True device=cpu workers=1", steps[i]);
        }
        var state = State(Path.Combine(dir, "tune"));
        Assert.All(state.Trials, t => Assert.Equal(TrialStatus.Completed, t.Status));
        Assert.Equal(new[] { "srun 0", "srun 1" }, state.Trials.Select(t => t.Slot).Order());
        log.WriteLine(string.Join('\n', steps));
    }
}

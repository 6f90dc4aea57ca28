using System.Text.Json;
using Osprey.Config;
using Osprey.Tests.Data;
using Osprey.Tests.Models;
using Osprey.Tuning;
using Xunit.Abstractions;

namespace Osprey.Tests.Tuning;

/// <summary>
/// The scheduler with a stand-in for <c>osprey tune-trial</c>: a shell script that reports fitness lr0 · epoch / epochs
/// in results.csv every 0.3 s and ends (exit 143) when its standard input closes, as a trial's lifeline. It shows ASHA
/// running asynchronously, two trials at once, on the real processes, files and state, in seconds.
/// </summary>
[Collection("multi-process")]
public class TuneSchedulerTests(ITestOutputHelper log)
{
    const string FakeTrial = """
        #!/bin/bash
        for a in "$@"; do
          case "$a" in
            lr0=*) lr0=${a#lr0=} ;; epochs=*) epochs=${a#epochs=} ;; project=*) project=${a#project=} ;; name=*) name=${a#name=} ;;
          esac
        done
        mkdir -p "$project/$name"
        csv="$project/$name/results.csv"
        echo "epoch,time,metrics/mAP50(B),metrics/mAP50-95(B)" > "$csv"
        for ((e = 1; e <= epochs; e++)); do
          read -t 0.3 _; rc=$?
          if [ $rc -ne 0 ] && [ $rc -le 128 ]; then exit 143; fi   # standard input closed: stopped, or the tuner died
          f=$(awk -v l="$lr0" -v e="$e" -v n="$epochs" 'BEGIN { printf "%.6g", l * e / n }')
          echo "$e,0,$f,$f" >> "$csv"
        done
        """;

    static readonly Dictionary<string, string> Environment = new() { ["PATH"] = "/usr/bin:/bin" };

    // A folder with the stand-in and a one-key space, and the tune's arguments.
    static (string Dir, TrialProgram Program, OspreyArgs Args) Setup(params string[] tokens)
    {
        string dir = TestModels.TempDir();
        string script = Path.Combine(dir, "fake-trial.sh");
        File.WriteAllText(script, FakeTrial.ReplaceLineEndings("\n"));
        string space = Path.Combine(dir, "space.yaml");
        File.WriteAllText(space, "lr0: [0.0, 1.0]\n");
        var args = ArgsParser.Parse(new[]
        {
            $"data={Path.Combine(DataTestFiles.SharedData, "coco8", "coco8.yaml")}", "device=cpu", $"space={space}", "seed=0", $"project={dir}",
        }.Concat(tokens).ToArray());
        return (dir, new TrialProgram("/bin/bash", new[] { script }), args);
    }

    [Fact]
    public void AshaTwoAtOnceStopsTrialsAtRungsAndRefillsTheirSlotsAtOnce()
    {
        var (_, program, args) = Setup("search=asha", "iterations=8", "epochs=9", "grace_period=1", "trials_at_once=2");
        var events = new List<TuneEvent>();
        var finished = new Tuner(args, program, Environment, events.Add).Run();
        foreach (var e in events.OfType<TrialEpoch>()) log.WriteLine($"trial{e.Index} epoch {e.Epoch} fitness {e.Fitness:0.0000}{(e.Stopped ? " STOP" : "")}");

        var state = TunerState.Load(TunerState.PathIn(finished.Directory));
        Assert.Equal(8, state.Trials.Count);
        Assert.All(state.Trials, t => Assert.Contains(t.Status, new[] { TrialStatus.Completed, TrialStatus.Stopped }));
        Assert.All(state.Trials.Where(t => t.Status == TrialStatus.Completed), t => Assert.Equal(9, t.Epochs));
        var stopped = state.Trials.Where(t => t.Status == TrialStatus.Stopped).ToList();
        Assert.NotEmpty(stopped);
        // a stopped trial ended through its lifeline (the script's exit 143), before its next epoch or right after it
        Assert.All(stopped, t => Assert.Equal(143, t.ExitCode));
        Assert.All(stopped, t => Assert.True(t.Epochs < 9 && t.Note!.StartsWith("stopped at epoch", StringComparison.Ordinal)));
        // fewer trial-epochs than trials × epochs
        Assert.Equal(state.Trials.Sum(t => t.Epochs), finished.TrialEpochs);
        Assert.True(finished.TrialEpochs < 8 * 9, $"{finished.TrialEpochs} trial-epochs");

        // every decision is ASHA's on the results in the order the tuner saw them (rungs 1 and 3; 9 is max_t)
        var replay = new Asha(1, 9, 3);
        foreach (var e in events.OfType<TrialEpoch>().Where(e => e.Epoch < 9 && !EarlierStop(events, e)))
            Assert.Equal(e.Stopped, replay.OnResult(e.Index, e.Epoch, e.Fitness) == AshaDecision.Stop);
        Assert.Equal(replay.Recorded[1], state.Rungs[1]);
        Assert.Equal(replay.Recorded[3], state.Rungs[3]);

        // asynchronous: at most two at once, and a new trial starts while another is mid-run (no waiting for a bracket)
        Assert.All(events, e => Assert.True(e.Trials.Count(t => t.Status == TrialStatus.Running) <= 2));
        Assert.Contains(events.OfType<TrialStarted>(), s => s.Trials.Any(t => t.Index != s.Index && t.Status == TrialStatus.Running && t.Epoch >= 1));

        // tune_results.csv: fitness (the trial's best epoch, 5 places), then the space's keys
        string[] csv = File.ReadAllLines(Path.Combine(finished.Directory, "tune_results.csv"));
        Assert.Equal("fitness,lr0", csv[0]);
        Assert.Equal(state.Trials.Select(t => Math.Round(t.Fitness.Max(), 5)),
            csv.Skip(1).Select(l => double.Parse(l.Split(',')[0], System.Globalization.CultureInfo.InvariantCulture)));
        Assert.True(File.Exists(Path.Combine(finished.Directory, "tune_fitness.png")));
        Assert.True(File.Exists(Path.Combine(finished.Directory, "tune_scatter_plots.png")));
        Assert.Contains("lr0: ", File.ReadAllText(Path.Combine(finished.Directory, "best_hyperparameters.yaml")));
        Assert.Equal(state.Trials.MaxBy(t => t.Fitness.Max())!.Index, finished.BestTrial);
    }

    // Rows a trial wrote after ASHA stopped it (before its lifeline ended it) are recorded, not judged.
    static bool EarlierStop(List<TuneEvent> events, TrialEpoch e) =>
        events.TakeWhile(x => x != e).OfType<TrialEpoch>().Any(x => x.Index == e.Index && x.Stopped);

    [Fact]
    public void OneTunerPerFolderAndACancelledTuneResumesWithoutRepeatingEndedTrials()
    {
        var (dir, program, args) = Setup("search=genetic", "iterations=4", "epochs=4", "trials_at_once=2");
        string tune = Path.Combine(dir, "tune");
        using var cancel = new CancellationTokenSource();
        string? refused = null;
        void Watch(TuneEvent e)
        {
            if (e is TrialEpoch { Index: 0, Epoch: 1 })            // a second tuner on the same folder is turned away
                refused = Assert.Throws<ArgumentsException>(() => new Tuner(ArgsParser.Parse(new[] { $"resume={tune}" }), program, Environment).Run()).Message;
            if (e is TrialEnded) cancel.Cancel();                   // the first trial to end: stop the tuner
        }
        Assert.Throws<OperationCanceledException>(() => new Tuner(args, program, Environment, Watch).Run(cancel.Token));
        Assert.Contains("is being tuned by another osprey tune", refused);
        var interrupted = TunerState.Load(TunerState.PathIn(tune));
        var ended = interrupted.Trials.Where(t => t.Ended).Select(t => t.Index).ToList();
        Assert.NotEmpty(ended);
        Assert.Contains(interrupted.Trials, t => t.Status == TrialStatus.Running);   // left for the resume

        var finished = new Tuner(ArgsParser.Parse(new[] { $"resume={tune}" }), program, Environment).Run();
        var state = TunerState.Load(TunerState.PathIn(finished.Directory));
        Assert.Equal(4, state.Trials.Count);
        Assert.All(state.Trials, t => Assert.Equal((TrialStatus.Completed, 4), (t.Status, t.Epochs)));
        Assert.All(state.Trials.Where(t => ended.Contains(t.Index)), t => Assert.Equal(1, t.Launches));   // not run again
        Assert.All(interrupted.Trials.Where(t => t.Status == TrialStatus.Running), t => Assert.Equal(2, state.Trials[t.Index].Launches));
        Assert.Equal(interrupted.Trials.Select(t => t.Hyperparameters), state.Trials.Take(interrupted.Trials.Count).Select(t => t.Hyperparameters));
        Assert.Contains("already holds a tune", Assert.Throws<ArgumentsException>(
            () => new Tuner(args with { Name = "tune", ExistOk = true }, program, Environment).Run()).Message);
        Assert.Contains("neither a tune folder", Assert.Throws<ArgumentsException>(
            () => new Tuner(ArgsParser.Parse(new[] { $"resume={dir}" }), program, Environment).Run()).Message);
    }

    [Fact]
    public void TheStateRoundTripsThroughItsJson()
    {
        var state = new TunerState
        {
            Arguments = { "data=shapes", "search=asha" }, Search = SearchMethod.Asha, Seed = 3, Iterations = 5, Epochs = 9, GracePeriod = 1,
            Space = { new SearchDimension("lr0", 1e-5, 1e-2), new SearchDimension("close_mosaic", 0, 10, Integer: true) },
            Trials = { new TrialRecord { Index = 0, RunDirectory = "/x/trials/trial0", Status = TrialStatus.Stopped, Fitness = { 0.1, double.NaN } } },
            Rungs = { [1] = new Dictionary<int, double> { [0] = 0.1 } },
        };
        string dir = TestModels.TempDir();
        state.Save(dir);
        var back = TunerState.Load(TunerState.PathIn(dir));
        var json = new JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };
        Assert.Equal(JsonSerializer.Serialize(state, json), JsonSerializer.Serialize(back, json));
        Assert.True(double.IsNaN(back.Trials[0].Fitness[1]));
        File.WriteAllText(TunerState.PathIn(dir), "{ not json");
        Assert.StartsWith(TunerState.PathIn(dir), Assert.Throws<InvalidDataException>(() => TunerState.Load(TunerState.PathIn(dir))).Message);
    }
}

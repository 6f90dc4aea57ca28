using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Osprey.Config;

namespace Osprey.Tuning;

/// <summary>
/// Runs a tune's trials on its slots: starts a trial as soon as a slot is free (interrupted trials of a resumed tune
/// first, then new ones in index order; a genetic trial waits for the trials it is bred from), reads each running trial's
/// results.csv, asks ASHA after every epoch and stops a trial below its rung's cutoff at once (its lifeline closed, killed
/// after <see cref="StopGrace"/>), and records every end: exit 0 completed, stopped by ASHA stopped, anything else failed
/// (the tune goes on). The state is saved after every event, so a killed tuner loses nothing it had seen.
/// </summary>
internal sealed class TrialScheduler : IDisposable
{
    /// <summary>How often running trials are looked at.</summary>
    static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>How long a stopped trial may take to end before it is killed.</summary>
    public static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(15);

    readonly TuneSession _session;
    readonly TrialProgram _program;
    readonly Action<TuneEvent> _publish;
    readonly Asha? _asha;
    readonly Dictionary<int, Running> _running = new();
    readonly Queue<int> _interrupted;
    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly double _earlierSeconds;
    readonly TuneOutputs _outputs;

    sealed record Running(TrialProcess Process, TrialSlot Slot, ResultsTail Results)
    {
        public DateTime? StopAsked { get; set; }
    }

    public TrialScheduler(TuneSession session, TrialProgram program, Action<TuneEvent> publish)
    {
        (_session, _program, _publish) = (session, program, publish);
        var state = session.State;
        if (state.Search == SearchMethod.Asha) _asha = new Asha(state.GracePeriod, state.Epochs, state.ReductionFactor, state.Rungs);
        foreach (var trial in state.Trials.Where(t => t.Status == TrialStatus.Running))
        {
            TrialProcess.EndLeftover(trial.ProcessId, trial.RunDirectory);
            if (trial.StopRequested) trial.Status = TrialStatus.Stopped;  // ASHA had stopped it; the tuner died before it ended
        }
        _interrupted = new Queue<int>(state.Trials.Where(t => t.Status == TrialStatus.Running).Select(t => t.Index));
        _earlierSeconds = state.Seconds;
        _outputs = new TuneOutputs(session.Directory);
    }

    TunerState State => _session.State;

    IReadOnlyList<TrialView> Views => State.Trials.Select(TrialView.Of).ToArray();

    double Seconds => _earlierSeconds + _clock.Elapsed.TotalSeconds;

    /// <summary>Runs every trial to its end. Cancelled, it stops the running trials and leaves them to a resume.</summary>
    public void Run(CancellationToken cancellationToken)
    {
        _publish(new TuneStarted(_session.Directory, State.Search, State.Iterations, State.Epochs,
            _asha?.Milestones.Where(m => m < State.Epochs).ToArray() ?? Array.Empty<int>(), _session.Placement.Launcher.Description,
            _session.Placement.Slots.Select(s => s.Label).ToArray(), _session.Space.Keys, _session.Resumed, Views));
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            foreach (var (index, running) in _running.ToArray()) Poll(State.Trials[index], running);
            Launch();
            if (_running.Count == 0 && _interrupted.Count == 0 && State.Trials.Count >= State.Iterations) break;
            cancellationToken.WaitHandle.WaitOne(PollInterval);
        }
    }

    /// <summary>Writes the outputs and plots and reports the end.</summary>
    public TuneFinished Finish()
    {
        Save();
        _outputs.Write(_session, Seconds, final: true);
        var best = TuneOutputs.Best(State);
        var finished = new TuneFinished(_session.Directory, best?.Index, best?.BestFitness, State.Trials.Sum(t => t.Epochs), Seconds, Views);
        _publish(finished);
        return finished;
    }

    // Free slots take interrupted trials first, then new trials in index order (a genetic one once it can be bred).
    void Launch()
    {
        var free = new Queue<TrialSlot>(_session.Placement.Slots.Where(s => _running.Values.All(r => r.Slot != s)));
        while (free.Count > 0)
        {
            if (_interrupted.TryDequeue(out int index)) Start(State.Trials[index], free.Dequeue());
            else if (State.Trials.Count < State.Iterations && _session.CanCreate(State.Trials.Count)) Start(Create(State.Trials.Count), free.Dequeue());
            else break;
        }
    }

    TrialRecord Create(int index)
    {
        var trial = new TrialRecord
        {
            Index = index, RunDirectory = Path.Combine(_session.Directory, "trials", $"trial{index}"),
            Hyperparameters = _session.Hyperparameters(index), Status = TrialStatus.Running,
        };
        State.Trials.Add(trial);
        return trial;
    }

    void Start(TrialRecord trial, TrialSlot slot)
    {
        bool resumed = trial.Launches > 0;
        if (resumed && !File.Exists(Path.Combine(trial.RunDirectory, "weights", "last.ckpt")))
        {
            File.Delete(Path.Combine(trial.RunDirectory, "results.csv")); // no checkpoint (save=False, or killed in epoch 1): start over
            trial.Fitness.Clear();
        }
        var command = _session.Placement.Launcher.Command(slot, trial.Name, _program, _session.TrialArguments(trial, slot));
        Directory.CreateDirectory(trial.RunDirectory);
        TrialProcess process;
        try
        {
            process = TrialProcess.Start(command, Environment.CurrentDirectory, Path.Combine(trial.RunDirectory, "train.log"));
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException($"cannot start a trial: {command.Executable}: {e.Message}", e);
        }
        (trial.Slot, trial.ProcessId, trial.Status, trial.ExitCode) = (slot.Label, process.Id, TrialStatus.Running, null);
        trial.Launches++;
        _running[trial.Index] = new Running(process, slot, new ResultsTail(Path.Combine(trial.RunDirectory, "results.csv")));
        Save();
        _publish(new TrialStarted(trial.Index, slot.Label, resumed, trial.Hyperparameters, Views));
    }

    void Poll(TrialRecord trial, Running running)
    {
        bool exited = running.Process.HasExited;         // before reading: every row written before the exit is seen
        foreach (var (epoch, fitness) in running.Results.ReadNew()) Report(trial, running, epoch, fitness);
        if (exited) End(trial, running);
        else if (running.StopAsked is { } asked && DateTime.UtcNow - asked > StopGrace) running.Process.Kill();
    }

    void Report(TrialRecord trial, Running running, int epoch, double fitness)
    {
        if (epoch <= trial.Epochs) return;                // already recorded (the rows before a resumed trial's checkpoint)
        while (trial.Fitness.Count < epoch - 1) trial.Fitness.Add(double.NaN); // a row lost to a kill between checkpoint and row
        trial.Fitness.Add(fitness);
        bool stop = false;
        if (_asha is not null && !trial.StopRequested && epoch < State.Epochs
            && _asha.OnResult(trial.Index, epoch, fitness, out var judged) == AshaDecision.Stop)
        {
            stop = trial.StopRequested = true;
            trial.Note = string.Format(CultureInfo.InvariantCulture, "stopped at epoch {0}: fitness {1:0.#####} below rung {2}'s cutoff {3:0.#####}",
                epoch, fitness, judged!.Value.Rung, judged.Value.Cutoff);
            running.Process.Stop();
            running.StopAsked = DateTime.UtcNow;
        }
        Save();
        _publish(new TrialEpoch(trial.Index, epoch, fitness, stop, Views));
    }

    void End(TrialRecord trial, Running running)
    {
        running.Process.WaitForExit(TimeSpan.FromSeconds(10));
        trial.ExitCode = running.Process.ExitCode;
        trial.Status = trial.StopRequested ? TrialStatus.Stopped : trial.ExitCode == 0 ? TrialStatus.Completed : TrialStatus.Failed;
        if (trial.Status == TrialStatus.Failed)
            trial.Note = $"exit code {trial.ExitCode} after {trial.Epochs} epoch(s): see {Path.Combine(trial.RunDirectory, "train.log")}";
        if (_asha is not null && trial.Status != TrialStatus.Failed && trial.Epochs > 0)
            _asha.OnComplete(trial.Index, trial.Epochs, trial.Fitness[^1]);
        running.Process.Dispose();
        _running.Remove(trial.Index);
        Save();
        _outputs.Write(_session, Seconds, final: false);
        _publish(new TrialEnded(trial.Index, trial.Status, Views));
    }

    void Save()
    {
        if (_asha is not null) State.Rungs = _asha.Recorded.ToDictionary(r => r.Key, r => r.Value);
        State.Seconds = Seconds;
        State.Save(_session.Directory);
    }

    /// <summary>Stops the trials still running (a cancelled or failed tuner); the state keeps them for a resume.</summary>
    public void Dispose()
    {
        foreach (var running in _running.Values) running.Process.Stop();
        foreach (var running in _running.Values)
        {
            if (!running.Process.WaitForExit(StopGrace)) running.Process.Kill();
            running.Process.Dispose();
        }
        _running.Clear();
    }
}

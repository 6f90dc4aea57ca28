using System.Collections;
using Osprey.Config;

namespace Osprey.Tuning;

/// <summary>
/// <c>osprey tune</c>: hyperparameter search over whole <c>osprey train</c> runs, many at once. Each trial is a training
/// run in a process of its own (the <see cref="TrialProgram"/>, e.g. <c>osprey tune-trial</c>), placed on a free slot of
/// its <see cref="TrialPlacement"/> (CPU slices or GPUs of this machine, Slurm job steps, mpirun hosts), with every train
/// argument of the tune plus its hyperparameters, in <c>TUNE/trials/trialN</c>. The search is Ultralytics' genetic tuner
/// or random trials under ASHA (<c>search=</c>); a trial reports each epoch's fitness through its results.csv; a crashed
/// trial is recorded as failed and the tune goes on; the state (<c>tune_state.json</c>) is written after every event, and
/// <c>resume=</c> continues a killed tuner without repeating ended trials, interrupted ones from their last checkpoint.
/// The tuner never prints: it reports <see cref="TuneEvent"/>s.
/// </summary>
public sealed class Tuner
{
    readonly OspreyArgs _args;
    readonly TrialProgram _program;
    readonly IReadOnlyDictionary<string, string> _environment;
    readonly Action<TuneEvent> _events;

    /// <param name="args">The tune's arguments (every train argument, plus iterations, search, space, trials_at_once,
    /// grace_period, hostfile, resume).</param>
    /// <param name="program">What runs one trial.</param>
    /// <param name="environment">The environment to place trials by (SLURM_*, PATH, OMP_NUM_THREADS); null: this process's.</param>
    /// <param name="events">Receives the progress events.</param>
    public Tuner(OspreyArgs args, TrialProgram program, IReadOnlyDictionary<string, string>? environment = null, Action<TuneEvent>? events = null)
    {
        (_args, _program, _events) = (args, program, events ?? (_ => { }));
        _environment = environment ?? ProcessEnvironment();
    }

    /// <summary>Runs (or continues) the tune to its end and returns the final event.</summary>
    /// <exception cref="ArgumentsException">A bad argument, space, placement or resume target.</exception>
    public TuneFinished Run(CancellationToken cancellationToken = default)
    {
        using var session = TuneSession.Open(_args, _environment);
        using var scheduler = new TrialScheduler(session, _program, _events);
        scheduler.Run(cancellationToken);
        return scheduler.Finish();
    }

    static Dictionary<string, string> ProcessEnvironment()
    {
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables()) variables[(string)entry.Key] = entry.Value as string ?? "";
        return variables;
    }
}

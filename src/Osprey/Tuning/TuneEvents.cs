namespace Osprey.Tuning;

/// <summary>Something the tuner reports; the CLI renders these (the library never prints). Every event carries the
/// table of trials as it stands after it.</summary>
/// <param name="Trials">Every trial so far, by index.</param>
public abstract record TuneEvent(IReadOnlyList<TrialView> Trials);

/// <summary>One row of the table of trials.</summary>
/// <param name="Index">The trial's index.</param>
/// <param name="Name">Its name (its run folder's).</param>
/// <param name="Status">Where it stands.</param>
/// <param name="Epoch">Epochs reported.</param>
/// <param name="Fitness">Its latest epoch's fitness, or null.</param>
/// <param name="BestFitness">Its best epoch's fitness, or null.</param>
/// <param name="Slot">Where it runs (ran).</param>
/// <param name="Note">Why it stopped or failed, or null.</param>
public sealed record TrialView(int Index, string Name, TrialStatus Status, int Epoch, double? Fitness, double? BestFitness, string? Slot, string? Note)
{
    /// <summary>The row of <paramref name="trial"/>.</summary>
    public static TrialView Of(TrialRecord trial) => new(trial.Index, trial.Name, trial.Status, trial.Epochs,
        trial.Fitness.Count > 0 ? trial.Fitness[^1] : null, trial.BestFitness, trial.Slot, trial.Note);
}

/// <summary>The tune begins (or continues).</summary>
/// <param name="Directory">The tune folder.</param>
/// <param name="Search">genetic or asha.</param>
/// <param name="Iterations">Trials to run.</param>
/// <param name="Epochs">Epochs of a full trial.</param>
/// <param name="Rungs">ASHA's rungs (epochs), empty for the genetic tuner.</param>
/// <param name="Launcher">What runs the trials.</param>
/// <param name="Slots">The slots' labels.</param>
/// <param name="Space">The searched arguments.</param>
/// <param name="Resumed">True when a killed tuner continues.</param>
public sealed record TuneStarted(string Directory, Config.SearchMethod Search, int Iterations, int Epochs, IReadOnlyList<int> Rungs,
    string Launcher, IReadOnlyList<string> Slots, IReadOnlyList<string> Space, bool Resumed, IReadOnlyList<TrialView> Trials) : TuneEvent(Trials);

/// <summary>A trial's process started in a slot (<paramref name="Resumed"/>: an interrupted trial continues from its checkpoint).</summary>
public sealed record TrialStarted(int Index, string Slot, bool Resumed, IReadOnlyDictionary<string, double> Hyperparameters,
    IReadOnlyList<TrialView> Trials) : TuneEvent(Trials);

/// <summary>A trial reported an epoch; <paramref name="Stopped"/> when ASHA stops it there.</summary>
public sealed record TrialEpoch(int Index, int Epoch, double Fitness, bool Stopped, IReadOnlyList<TrialView> Trials) : TuneEvent(Trials);

/// <summary>A trial's process ended (completed, stopped or failed).</summary>
public sealed record TrialEnded(int Index, TrialStatus Status, IReadOnlyList<TrialView> Trials) : TuneEvent(Trials);

/// <summary>The tune is over.</summary>
/// <param name="Directory">The tune folder.</param>
/// <param name="BestTrial">The best trial's index, or null when none reported a fitness.</param>
/// <param name="BestFitness">Its fitness.</param>
/// <param name="TrialEpochs">Epochs trained over all trials (ASHA: fewer than trials × epochs).</param>
/// <param name="Seconds">Wall time, earlier launches of a resumed tuner included.</param>
public sealed record TuneFinished(string Directory, int? BestTrial, double? BestFitness, int TrialEpochs, double Seconds,
    IReadOnlyList<TrialView> Trials) : TuneEvent(Trials);

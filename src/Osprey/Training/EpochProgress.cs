namespace Osprey.Training;

/// <summary>Where an epoch's training stands: the global iteration, the last optimiser step, the running mean losses.</summary>
internal sealed class EpochProgress
{
    /// <summary>The current global micro-batch counter (Ultralytics' <c>ni</c>).</summary>
    public long Iteration { get; set; }

    /// <summary>Iteration of the last optimiser step (for gradient accumulation).</summary>
    public long LastStep { get; set; }

    /// <summary>Running mean of box, cls, dfl (then the loss terms') over the epoch's finite steps so far.</summary>
    public double[] MeanLosses { get; private init; } = new double[3];

    /// <summary>Steps averaged into <see cref="MeanLosses"/>.</summary>
    public int Seen { get; private set; }

    /// <summary>The progress at the start of <paramref name="epoch"/> with <paramref name="terms"/> loss terms besides box,
    /// cls, dfl: a mid-epoch checkpoint's means continue.</summary>
    public static EpochProgress Start(TrainingState state, int epoch, int terms = 0)
    {
        int items = 3 + terms;
        bool midEpoch = epoch == state.Epoch && state.BatchInEpoch > 0 && state.EpochMeanLosses?.Length == items;
        return new EpochProgress
        {
            Iteration = state.Iteration, LastStep = state.LastOptimizerIteration,
            MeanLosses = midEpoch ? state.EpochMeanLosses!.ToArray() : new double[items], Seen = midEpoch ? state.EpochBatchesSeen : 0,
        };
    }

    /// <summary>Adds a step's losses to the means; a non-finite step (fp16 overflow) stays out of them.</summary>
    public void Add(StepResult step)
    {
        if (!step.Finite) return;
        Seen++;
        MeanLosses[0] += (step.Box - MeanLosses[0]) / Seen;
        MeanLosses[1] += (step.Cls - MeanLosses[1]) / Seen;
        MeanLosses[2] += (step.Dfl - MeanLosses[2]) / Seen;
        for (int i = 0; i < step.Terms.Count && 3 + i < MeanLosses.Length; i++)
            MeanLosses[3 + i] += (step.Terms[i] - MeanLosses[3 + i]) / Seen;
    }

    /// <summary>The state a step checkpoint after <paramref name="batchInEpoch"/> batches of <paramref name="epoch"/> saves.</summary>
    public TrainingState Checkpoint(TrainingRun run, int epoch, int batchInEpoch) => run.State with
    {
        Epoch = epoch, BatchInEpoch = batchInEpoch, Iteration = Iteration + 1, LastOptimizerIteration = LastStep,
        EmaUpdates = run.Ema.Updates, EpochMeanLosses = MeanLosses.ToArray(), EpochBatchesSeen = Seen, LossScaler = run.Scaler?.State,
    };
}

using Osprey.Evaluation;
using Osprey.Plotting;
using TorchSharp;

namespace Osprey.Training;

/// <summary>
/// Attaches to a trainer's lifecycle without editing the trainer (Ultralytics' callbacks, YOLOX's before/after hooks): the
/// trainer calls <see cref="On"/> with every <see cref="TrainingEvent"/> as it happens, on the training thread — the start,
/// each epoch's start, every batch, validation progress, each epoch's end (after validation and saving), messages, the
/// final validation's batches, the end. Loggers, plots and progress run on the main rank only; a callback that takes part
/// in training itself sets <see cref="EveryRank"/>.
/// </summary>
public interface ITrainingCallback
{
    /// <summary>True: every rank's trainer calls it; false (the default): only the main rank's.</summary>
    bool EveryRank => false;

    /// <summary>Called with each event as it happens; <paramref name="run"/> is the run (its arguments, files, model,
    /// state) and takes stop requests (<see cref="TrainingRun.RequestStop"/>).</summary>
    void On(TrainingEvent e, TrainingRun run);
}

/// <summary>
/// Forwards the events to a delegate (the command line renders them on another thread; tests and benchmarks watch them).
/// What is valid only during the call stays behind: <see cref="BatchFinished.Images"/> is cleared and
/// <see cref="FinalValidationBatch"/> is not forwarded (a callback of its own sees both).
/// </summary>
public sealed class EventSink(Action<TrainingEvent> events) : ITrainingCallback
{
    /// <inheritdoc/>
    public void On(TrainingEvent e, TrainingRun run)
    {
        if (e is FinalValidationBatch) return;
        events(e is BatchFinished { Images: not null } batch ? batch with { Images = null } : e);
    }
}

/// <summary>The run's logs: results.csv, step_times.csv, TensorBoard scalars, results.png, and predictions.json of the
/// final validation (<c>save_json</c>).</summary>
public sealed class RunLog : ITrainingCallback
{
    TorchSharp.Modules.SummaryWriter? _tensorboard;

    /// <inheritdoc/>
    public void On(TrainingEvent e, TrainingRun run)
    {
        switch (e)
        {
            case TrainingStarted:
                _tensorboard = torch.utils.tensorboard.SummaryWriter(run.Files.Directory);
                break;
            case EpochFinished finished:
                ResultsCsv.Append(run.Files.Results, finished.Result);
                if (finished.StepTimes is { } times) StepTimesCsv.Append(run.Files.StepTimes, times);
                if (run.Args.Plots) RunPlots.Results(run.Files.Results, Path.Combine(run.Files.Directory, "results.png"));
                if (_tensorboard is not null) LogScalars(_tensorboard, finished.Result);
                break;
            case TrainingFinished { Final: { } final } when run.Args.SaveJson:
                CocoPrediction.WriteJson(Path.Combine(run.Files.Directory, "predictions.json"), final.Predictions);
                break;
        }
    }

    static void LogScalars(TorchSharp.Modules.SummaryWriter writer, EpochResult row)
    {
        string[] names = ResultsCsv.ColumnsFor(row.LossNames).Skip(2).ToArray();
        var values = row.TrainLosses.Concat(new[] { row.Precision, row.Recall, row.Map50, row.Map50To95 })
            .Concat(row.ValLosses).Concat(row.LearningRates).ToArray();
        for (int i = 0; i < names.Length; i++) writer.add_scalar(names[i], (float)values[i], row.Epoch);
    }
}

/// <summary>The run's pictures (<c>plots=True</c>): the first three training batches, the first three batches of the final
/// validation with their labels and predictions, the precision-recall curve and the confusion matrices.</summary>
public sealed class TrainingPlots : ITrainingCallback
{
    /// <inheritdoc/>
    public void On(TrainingEvent e, TrainingRun run)
    {
        if (!run.Args.Plots) return;
        string folder = run.Files.Directory;
        var names = run.Data.Names;
        switch (e)
        {
            case BatchFinished { Iteration: < 3, Images: { } batch } finished:
                RunPlots.Batch(batch, names, Path.Combine(folder, $"train_batch{finished.Iteration}.png"));
                break;
            case FinalValidationBatch { Index: < 3 } validated:
                RunPlots.Batch(validated.Images, names, Path.Combine(folder, $"val_batch{validated.Index}_labels.png"));
                RunPlots.Batch(validated.Images, names, Path.Combine(folder, $"val_batch{validated.Index}_pred.png"), validated.Detections);
                break;
            case TrainingFinished { Final: { } final }:
                RunPlots.PrecisionRecallCurve(final.Evaluator, names, Path.Combine(folder, "PR_curve.png"));
                RunPlots.ConfusionMatrix(final.Confusion, names, Path.Combine(folder, "confusion_matrix.png"), normalize: false);
                RunPlots.ConfusionMatrix(final.Confusion, names, Path.Combine(folder, "confusion_matrix_normalized.png"));
                break;
        }
    }
}

/// <summary>Ultralytics' <c>patience</c>: stops the run after that many epochs without a better fitness.</summary>
public sealed class EarlyStopping : ITrainingCallback
{
    /// <inheritdoc/>
    public void On(TrainingEvent e, TrainingRun run)
    {
        if (e is EpochFinished && run.State.EpochsWithoutImprovement >= run.Args.Patience)
            run.RequestStop($"no improvement in the last {run.Args.Patience} epochs (patience={run.Args.Patience})");
    }
}

/// <summary>Ultralytics' <c>time</c>: stops the run after the epoch in which its wall time (resumed launches included)
/// reaches that many hours; under data parallel rank 0's clock decides for every rank.</summary>
public sealed class TimeLimit : ITrainingCallback
{
    /// <inheritdoc/>
    public void On(TrainingEvent e, TrainingRun run)
    {
        if (e is EpochFinished && run.Args.Time is double hours && run.ElapsedSeconds / 3600 >= hours)
            run.RequestStop($"time={hours} hours reached");
    }
}

using Osprey.Data;
using Osprey.Evaluation;

namespace Osprey.Training;

/// <summary>Something the trainer reports; the CLI renders these (the library never prints).</summary>
public abstract record TrainingEvent;

/// <summary>The run is set up: where it writes, on what, with which data and optimiser.</summary>
public sealed record TrainingStarted(string RunDirectory, string Device, string Model, long Parameters,
    DatasetSummary Train, DatasetSummary Val, string Optimizer, int Batch, int Accumulate, int ImageSize,
    int Workers, int StartEpoch, int Epochs, bool Resumed) : TrainingEvent
{
    /// <summary>The precision the run computes in and why (<see cref="PrecisionChoice"/>).</summary>
    public string Precision { get; init; } = "fp32";

    /// <summary>The loss items' names (box_loss, cls_loss, dfl_loss, then a loss term's, e.g. dis_loss).</summary>
    public IReadOnlyList<string> LossNames { get; init; } = new[] { "box_loss", "cls_loss", "dfl_loss" };
}

/// <summary>
/// Set-up has built the model (on its device, under the run's cast policy) and not yet laid out the optimiser's parameters:
/// a callback that takes part in training (<see cref="ITrainingCallback.EveryRank"/>) may add a loss term here
/// (<see cref="TrainingRun.AddLossTerm"/>). Published before <see cref="TrainingStarted"/>.
/// </summary>
public sealed record ModelBuilt : TrainingEvent;

/// <summary>An epoch's training batches begin.</summary>
public sealed record EpochStarted(int Epoch, int Epochs, int Batches, bool Mosaic) : TrainingEvent;

/// <summary>One training batch is done.</summary>
/// <param name="MeanLosses">Running mean of box, cls, dfl (then the loss terms', e.g. dis) over the epoch so far.</param>
/// <param name="Instances">Boxes in this batch.</param>
public sealed record BatchFinished(int Epoch, int Epochs, int Batch, int Batches, IReadOnlyList<double> MeanLosses,
    int Instances, int ImageSize, double Seconds) : TrainingEvent
{
    /// <summary>The global micro-batch counter (Ultralytics' <c>ni</c>).</summary>
    public long Iteration { get; init; }

    /// <summary>The batch itself: valid only while the callbacks run (the trainer disposes it after the step).</summary>
    public Batch? Images { get; init; }
}

/// <summary>Validation of the epoch starts (<paramref name="Batches"/> batches).</summary>
public sealed record ValidationStarted(int Epoch, int Batches) : TrainingEvent;

/// <summary>One validation batch is done.</summary>
public sealed record ValidationBatchFinished(int Batch, int Batches) : TrainingEvent;

/// <summary>An epoch is done: its results.csv row, the validation result (null when not validated) and the mean time of
/// each phase of its training steps (also in step_times.csv).</summary>
public sealed record EpochFinished(EpochResult Result, ValidationResult? Validation, bool IsBest, StepTimes? StepTimes = null) : TrainingEvent;

/// <summary>One batch of the final validation of the best weights, with its detections (per image (n, 6) in batch
/// pixels): valid only while the callbacks run.</summary>
public sealed record FinalValidationBatch(int Index, Batch Images, IReadOnlyList<TorchSharp.torch.Tensor> Detections) : TrainingEvent;

/// <summary>A line of setup information, e.g. AutoBatch's decision (Ultralytics logs these).</summary>
public sealed record TrainingMessage(string Text) : TrainingEvent;

/// <summary>The run is over: why, where the weights are, and the final validation of the best weights.</summary>
public sealed record TrainingFinished(string RunDirectory, string LastWeights, string? BestWeights, int EpochsRun,
    double Hours, string StopReason, ValidationResult? Final, IReadOnlyList<string> ClassNames) : TrainingEvent;

/// <summary>Training threw after it started (<see cref="TrainingStarted"/>): published before the exception leaves the trainer.</summary>
/// <param name="Message">The exception's message.</param>
/// <param name="Cancelled">The run was cancelled (an <see cref="OperationCanceledException"/>) rather than failed.</param>
public sealed record TrainingFailed(string Message, bool Cancelled) : TrainingEvent;

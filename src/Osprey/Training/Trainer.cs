using System.Diagnostics;
using Osprey.Config;
using Osprey.Distributed;
using Osprey.Evaluation;
using Osprey.Runtime;
using Osprey.Training.Distillation;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// Trains a YOLO detector with Ultralytics' semantics: set up (<see cref="TrainingRun.Setup"/>), then per epoch train →
/// validate the EMA → save, then validate the best weights. The loss, optimiser groups, warmup and schedule, accumulation
/// to the nominal batch, clipping and EMA are <see cref="TrainStep"/>'s; results.csv, TensorBoard, plots, patience and the
/// time limit are callbacks (<see cref="ITrainingCallback"/>); the trainer itself writes the weights and the full-state
/// checkpoint (also every <c>save_period_steps</c> optimiser steps) and never prints.
/// </summary>
/// <remarks>
/// Data parallel (PyTorch DDP semantics) when the process was started by mpirun, torchrun or srun (or by
/// <see cref="DistributedLaunch"/>): <see cref="DataParallel"/> is the seam, touched here in three places — the job is
/// wrapped (<see cref="DataParallel.Run{T}"/>: a failure on any rank ends every rank), the data is sharded and the model
/// replicated in set-up (<see cref="TrainingRun"/>), and only the main rank writes files and runs the main-rank callbacks.
/// W ranks compute exactly the one-process step over the whole global batch (docs/architecture.md).
/// </remarks>
public sealed class Trainer
{
    /// <summary>Test hook: <c>RANK:ITERATION:MARKER_FILE</c> makes that rank SIGKILL itself at that iteration, once
    /// (when the marker file does not exist yet; it is created first).</summary>
    public const string FaultVariable = "OSPREY_FAULT_KILL";

    readonly OspreyArgs _args;
    readonly DistributedEnvironment? _environment;
    readonly Action<string>? _fatal;
    readonly List<ITrainingCallback> _callbacks = new() { new Distiller(), new RunLog(), new TrainingPlots(), new EarlyStopping(), new TimeLimit(), new Tracking.MlflowTracking() };

    /// <param name="args">The run's arguments.</param>
    /// <param name="events">Receives the progress events (main rank only).</param>
    /// <param name="environment">The job; null reads the launcher's environment variables.</param>
    /// <param name="fatal">Data parallel only: told the message of a failure just before the job is aborted.</param>
    public Trainer(OspreyArgs args, Action<TrainingEvent>? events = null, DistributedEnvironment? environment = null, Action<string>? fatal = null)
    {
        (_args, _environment, _fatal) = (args, environment, fatal);
        if (events is not null) _callbacks.Add(new EventSink(events));
    }

    /// <summary>Attaches <paramref name="callback"/> after the built-in ones (logs, plots, patience, time limit).</summary>
    public Trainer Add(ITrainingCallback callback)
    {
        _callbacks.Add(callback);
        return this;
    }

    /// <summary>Runs training to the end (or until a callback stops it) and returns the final event.</summary>
    public TrainingFinished Train(CancellationToken cancellationToken = default)
    {
        DistributedEnvironment job = _environment ?? DistributedEnvironment.FromProcess();
        if (job.IsDistributed) FaultInjection.LostAtStart(job.Rank);
        var (args, resumeFrom) = TrainingSetup.Resume(_args);
        Device device = args.DeviceOrDefault().Resolve(job.LocalRank, job.LocalWorldSize);
        using var parallel = DataParallel.Start(job, device);
        return parallel.Run(() => Train(args, resumeFrom, device, parallel, cancellationToken), _fatal);
    }

    TrainingFinished Train(OspreyArgs args, string? resumeFrom, Device device, DataParallel parallel, CancellationToken cancellationToken)
    {
        using var run = TrainingRun.Setup(args, resumeFrom, device, parallel, built => Publish(built, new ModelBuilt()));
        run.Messages = text => Publish(run, new TrainingMessage(text));
        Start(run);
        try
        {
            int epoch = run.State.Epoch;
            string? stop = null;
            while (epoch < run.Args.Epochs && stop is null)
            {
                cancellationToken.ThrowIfCancellationRequested();
                EpochTraining trained = TrainEpoch(run, epoch, cancellationToken);
                ValidationResult? validation = Validate(run, epoch);
                EndEpoch(run, epoch, trained, validation);
                stop = run.AgreedStop();
                epoch++;
            }
            return Finish(run, epoch, stop ?? "completed");
        }
        catch (Exception e) when (Failed(run, e))
        {
            throw;                                                       // not reached: Failed tells the callbacks and says false
        }
    }

    // Tells the callbacks (a tracker ends its run FAILED or KILLED); a callback's own failure here does not hide the first.
    bool Failed(TrainingRun run, Exception e)
    {
        try
        {
            Publish(run, new TrainingFailed(e.Message, e is OperationCanceledException));
        }
        catch (Exception)
        {
        }
        return false;
    }

    void Start(TrainingRun run)
    {
        foreach (string line in run.SetupLog) Publish(run, new TrainingMessage(line));
        var (started, notes) = run.Started();
        Publish(run, started);
        foreach (string note in notes) Publish(run, new TrainingMessage(note));
    }

    // One epoch's training batches: schedule, step, running mean losses, step checkpoints, events.
    EpochTraining TrainEpoch(TrainingRun run, int epoch, CancellationToken cancellationToken)
    {
        run.Model.train();
        Publish(run, new EpochStarted(epoch, run.Args.Epochs, run.BatchesPerEpoch, run.Augmentation.MosaicActive(epoch, run.Args.Epochs)));
        var progress = EpochProgress.Start(run.State, epoch, run.LossTerms.Count);
        run.Step.BeginEpoch();
        var clock = Stopwatch.StartNew();
        foreach (var batch in run.Timer.Timed(run.Batches(epoch, cancellationToken)))
        {
            using var owned = batch;
            if (epoch == run.State.Epoch && batch.Index < run.State.BatchInEpoch) continue; // resumed mid-epoch
            using var scope = NewDisposeScope();
            progress.Iteration = batch.Index + (long)run.BatchesPerEpoch * epoch;
            ScheduleValues values = run.Schedule.At(epoch, (int)progress.Iteration, run.BatchesPerEpoch);
            run.Optimizer.Apply(values);
            run.Fault?.At(progress.Iteration);
            bool stepped = progress.Iteration - progress.LastStep >= values.Accumulate;  // the optimiser micro-step
            progress.Add(run.Step.Run(batch, run.Device, stepped, run.Timer, epoch));
            if (stepped) progress.LastStep = progress.Iteration;
            if (stepped && run.Args.SavePeriodSteps > 0 && run.Ema.Updates % run.Args.SavePeriodSteps == 0 && run.IsMain && run.Args.Save)
                run.SaveCheckpoint(progress.Checkpoint(run, epoch, batch.Index + 1));
            Publish(run, new BatchFinished(epoch, run.Args.Epochs, batch.Index, run.BatchesPerEpoch, progress.MeanLosses.ToArray(),
                (int)batch.BatchIndex.shape[0], run.Args.Imgsz, clock.Elapsed.TotalSeconds) { Iteration = progress.Iteration, Images = batch });
        }
        var trained = new EpochTraining(progress, run.Optimizer.GroupLearningRates, run.Timer.TakeEpoch(epoch + 1));
        if (epoch == run.State.Epoch && run.TrainLoader.PinMemoryError is { } pinError) Publish(run, new TrainingMessage(pinError));
        return trained;
    }

    // The EMA on the validation set (every epoch with val=True, always after the last one).
    ValidationResult? Validate(TrainingRun run, int epoch)
    {
        if (!run.Args.Val && epoch + 1 < run.Args.Epochs) return null;
        Publish(run, new ValidationStarted(epoch, run.ValLoader.BatchesPerEpoch));
        return DetectionValidator.Run(run.EmaModel, run.ValLoader, run.Device, loss: run.Loss,
            progress: p => Publish(run, new ValidationBatchFinished(p.Batch, p.Batches)), parallel: run.Parallel);
    }

    // Best by fitness, the new state, the weights and checkpoint (main rank), the epoch's event.
    void EndEpoch(TrainingRun run, int epoch, EpochTraining trained, ValidationResult? validation)
    {
        double fitness = validation?.Metrics.Fitness ?? 0;
        bool isBest = run.State.BestFitness is null || fitness >= run.State.BestFitness;
        var row = new EpochResult(epoch + 1, run.ElapsedSeconds, trained.Progress.MeanLosses,
            validation?.Metrics.Precision ?? 0, validation?.Metrics.Recall ?? 0, validation?.Metrics.MAP50 ?? 0,
            validation?.Metrics.MAP50To95 ?? 0, ValidationLosses(run, validation), trained.LearningRates) { LossNames = run.LossNames };
        run.State = run.State with
        {
            Epoch = epoch + 1, BatchInEpoch = 0, Iteration = trained.Progress.Iteration + 1,
            LastOptimizerIteration = trained.Progress.LastStep, BestFitness = isBest ? fitness : run.State.BestFitness,
            EpochsWithoutImprovement = isBest ? 0 : run.State.EpochsWithoutImprovement + 1, EmaUpdates = run.Ema.Updates,
            EpochMeanLosses = null, EpochBatchesSeen = 0, LossScaler = run.Scaler?.State,
        };
        if (run.Args.Save && run.IsMain) run.SaveEpoch(epoch, isBest);
        Publish(run, new EpochFinished(row, validation, isBest, trained.StepTimes));
    }

    // box, cls, dfl on the validation set, then 0 for each loss term: as Ultralytics' distillation wrapper, whose loss
    // outside training returns the detection items and a zero dis_loss.
    static IReadOnlyList<double> ValidationLosses(TrainingRun run, ValidationResult? validation)
    {
        var losses = validation?.Losses ?? new double[3];
        return run.LossTerms.Count == 0 ? losses : losses.Concat(new double[run.LossTerms.Count]).ToArray();
    }

    // The best weights validated with the per-class table (its batches go to the callbacks for plots), and the end event.
    TrainingFinished Finish(TrainingRun run, int epochs, string stopReason)
    {
        ValidationResult? final = null;
        bool haveBest = run.HasBest();
        if (haveBest)
        {
            using var best = run.LoadBest();
            int index = 0;
            final = DetectionValidator.Run(best, run.ValLoader, run.Device, collectPredictions: run.Args.SaveJson, parallel: run.Parallel,
                inspectBatch: (batch, kept) => Publish(run, new FinalValidationBatch(index++, batch, kept)));
        }
        var finished = new TrainingFinished(run.Files.Directory, run.Files.Last, haveBest ? run.Files.Best : null, epochs, run.ElapsedSeconds / 3600, stopReason, final, run.Data.Names);
        Publish(run, finished);
        return finished;
    }

    void Publish(TrainingRun run, TrainingEvent e)
    {
        foreach (var callback in _callbacks)
            if (callback.EveryRank || run.IsMain) callback.On(e, run);
    }

    // What an epoch's training gave: its progress, the learning rates at its end, its step-time breakdown.
    sealed record EpochTraining(EpochProgress Progress, IReadOnlyList<double> LearningRates, StepTimes StepTimes);
}

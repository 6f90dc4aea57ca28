using System.Diagnostics;
using Osprey.Config;
using Osprey.Data;
using Osprey.Distributed;
using Osprey.Evaluation;
using Osprey.IO;
using Osprey.Losses;
using Osprey.Models;
using Osprey.Plotting;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// Trains a YOLOv8 detector with Ultralytics' semantics: loss, optimiser groups, warmup and schedule,
/// gradient accumulation to the nominal batch, clipping, EMA (used for validation and saving), validation every
/// epoch, best by fitness, patience, results.csv, args.yaml, safetensors weights, a full-state checkpoint for exact
/// resume (also every <c>save_period_steps</c> optimiser steps), TensorBoard scalars. Reports through
/// <see cref="TrainingEvent"/>s; never prints.
/// </summary>
/// <remarks>
/// Data parallel (PyTorch DDP semantics) when the process was started by mpirun, torchrun or srun (or by
/// <see cref="DistributedLaunch"/>): each rank uses the device of its local rank, the global <c>batch</c> is split
/// evenly over the ranks, rank 0's weights are broadcast at start, gradients are averaged on optimiser micro-steps
/// only, the loss normaliser is global (so W ranks compute exactly the one-process step over the whole batch),
/// <c>sync_bn=True</c> synchronises BatchNorm statistics, validation is sharded and gathered, and only rank 0 writes
/// files and reports events. A failure on any rank ends the whole job (<see cref="IProcessGroup.Abort"/>).
/// </remarks>
/// <param name="args">The run's arguments.</param>
/// <param name="events">Receives the progress events (rank 0 only).</param>
/// <param name="environment">The job; null reads the launcher's environment variables.</param>
/// <param name="fatal">Data parallel only: told the message of a failure just before the job is aborted.</param>
public sealed class Trainer(OspreyArgs args, Action<TrainingEvent>? events = null,
    DistributedEnvironment? environment = null, Action<string>? fatal = null)
{
    /// <summary>Test hook: <c>RANK:ITERATION:MARKER_FILE</c> makes that rank SIGKILL itself at that iteration, once
    /// (when the marker file does not exist yet; it is created first).</summary>
    public const string FaultVariable = "OSPREY_FAULT_KILL";
    /// <summary>Data parallel: <c>overlap</c> or <c>post</c> (<see cref="GradientSync"/>); unset: <see cref="DataParallel.DefaultSync"/>.</summary>
    public const string GradientSyncVariable = "OSPREY_GRAD_SYNC";
    /// <summary>Data parallel, post-backward sync: <c>1</c> gradients as views of the flat buckets, <c>0</c> copied into and out
    /// of them; unset: <see cref="DataParallel.DefaultGradientAsBucketView"/>.</summary>
    public const string GradientViewVariable = "OSPREY_GRAD_BUCKET_VIEW";
    /// <summary>Data parallel: gradient bucket capacity in MB (DDP's <c>bucket_cap_mb</c>); unset: 25.</summary>
    public const string BucketVariable = "OSPREY_BUCKET_MB";
    /// <summary><c>0</c>: the optimiser, clipping, loss scaling, EMA and all-reduce work per parameter instead of on the
    /// flat buffers of <see cref="FlatParameters"/>; unset or <c>1</c>: flat (not with <c>OSPREY_GRAD_SYNC=overlap</c>).</summary>
    public const string FlatVariable = "OSPREY_FLAT_PARAMETERS";
    /// <summary>Gradient-norm clip, as Ultralytics (max_norm 10).</summary>
    public const double MaxGradientNorm = 10.0;

    /// <summary>Runs training to the end (or until patience/time stops it) and returns the final event.</summary>
    public TrainingFinished Train(CancellationToken cancellationToken = default)
    {
        DistributedEnvironment job = environment ?? DistributedEnvironment.FromProcess();
        if (!ProcessGroupFactory.NeedsGroup(job)) return Train(job, null, cancellationToken);
        string? resumeFrom = ResumePath(args);
        OspreyArgs requested = resumeFrom is null ? args : ResumedArgs(args, resumeFrom);
        Device device = DeviceRequest.Parse(requested.Device).Resolve(job.LocalRank, job.LocalWorldSize);
        IProcessGroup group = ProcessGroupFactory.Create(device, job);
        try
        {
            var finished = Train(job, group, cancellationToken);
            group.Barrier();
            group.Dispose();
            return finished;
        }
        catch (Exception e)
        {
            // One rank alone cannot leave a collective job: say why, then end every rank (non-zero exit).
            fatal?.Invoke($"rank {job.Rank} of {job.WorldSize} failed: {e}");
            group.Abort(1);
            throw;
        }
    }

    TrainingFinished Train(DistributedEnvironment job, IProcessGroup? distributed, CancellationToken cancellationToken)
    {
        // ── resolve the run: fresh, or resumed from a checkpoint ──────────────────────────────────
        IProcessGroup group = distributed ?? new SingleProcessGroup();
        int world = group.WorldSize;
        bool collective = group.Communicates;                            // data parallel, even at world 1 (forced backend)
        bool master = group.Rank == 0;
        Action<TrainingEvent>? emit = master ? events : null;
        string? resumeFrom = ResumePath(args);
        OspreyArgs run = resumeFrom is null ? args.Clone() : ResumedArgs(args, resumeFrom);
        Device device = DeviceRequest.Parse(run.Device).Resolve(job.LocalRank, job.LocalWorldSize);
        run = TrainingSetup.ResolveDefaults(run, device.type == DeviceType.CPU);
        TrainingSetup.RejectUnsupported(run);
        DatasetConfig data = DatasetCatalog.Resolve(run.Data!);
        // Global batch; batch=-1 / 0<batch<1: AutoBatch (the probe's model needs the class count). Like Ultralytics, the
        // checkpoint keeps the batch chosen, so a resumed run does not measure again.
        int batch = AutoBatch.Resolve(run.Batch, run.Imgsz, device, group,
            () =>
            {
                var probeModel = TrainingSetup.CreateModel(run.Model, data.ClassCount);
                probeModel.to(device);
                // profiled as it will train (Ultralytics profiles under autocast): the run's cast policy and layout
                return new CudaMemoryProbe(probeModel, device, run.Imgsz, MixedPrecision.Resolve(run, device).Policy);
            },
            line => emit?.Invoke(new TrainingMessage(line)));
        run.Batch = batch;
        if (batch % world != 0)
            throw new ArgumentsException($"batch={batch} does not split evenly over {world} ranks: use a multiple of {world}");
        int rankBatch = batch / world;                                                 // this rank's share
        TrainingState? saved = resumeFrom is null ? null : Checkpoint.ReadState(resumeFrom);
        string runDirectory = saved?.RunDirectory ?? DataParallel.BroadcastString(group,
            master ? RunDirectory.Create(run.Project, run.Name, "train", run.ExistOk) : null);
        string weightsDirectory = Path.Combine(runDirectory, "weights");
        if (master) Directory.CreateDirectory(weightsDirectory);
        if (saved is null && master) AtomicFile.WriteAllText(Path.Combine(runDirectory, "args.yaml"), ArgsYaml.Serialize(run));
        var fault = FaultInjection.FromEnvironment(group.Rank);

        // deterministic=True needs no switch here: TorchSharp 0.107 has no use_deterministic_algorithms, and the CPU
        // kernels used are deterministic for a fixed thread count (the resume test checks bit-exactness).
        torch.manual_seed(run.Seed);

        // ── data ─────────────────────────────────────────────────────────────────────────────────
        var trainSet = DetectionDataset.Load(data, DatasetSplit.Train);
        var valSet = DetectionDataset.Load(data, DatasetSplit.Val);
        var cache = TrainingSetup.CacheMode(run.Cache);
        using var trainLoader = DataLoader.ForTraining(trainSet, new LoaderOptions(
            ImageSize: run.Imgsz, BatchSize: rankBatch, Workers: Math.Max(run.Workers, 1), Seed: run.Seed,
            Rank: group.Rank, WorldSize: world, Cache: cache, Augment: TrainingSetup.Augmentation(run), Epochs: run.Epochs,
            PinMemory: TrainingSetup.PinMemory(device), SampleDelay: FaultInjection.DataDelay(), DeviceAugment: run.GpuAugment));
        using var valLoader = DataLoader.ForValidation(valSet, new LoaderOptions(
            ImageSize: run.Imgsz, BatchSize: rankBatch * 2, Workers: Math.Max(run.Workers, 1), Seed: run.Seed,
            Rank: group.Rank, WorldSize: world, Cache: cache));

        // ── model, EMA, loss, optimiser, schedule ──────────────────────────────────────────────────
        int nc = data.ClassCount;
        DetectionModel model = TrainingSetup.CreateModel(run.Model, nc);
        TrainingSetup.Freeze(model, run.Freeze);
        model.to(device);
        if (saved is null && Path.GetExtension(run.Model ?? "").Equals(".onnx", StringComparison.OrdinalIgnoreCase))
            BatchNormCalibration.Calibrate(model, CalibrationImages(trainLoader, device)); // BN-fused import: see there
        // Mixed precision (Osprey's cast policy: fp32 master weights, BN statistics, loss, optimiser and EMA) and, on
        // CUDA, channels-last and cuDNN autotuning. The EMA model computes the same way, so per-epoch validation runs
        // in the compute dtype (as Ultralytics' half-precision validation during training); the final validation of
        // best.safetensors runs in fp32.
        var precision = MixedPrecision.Resolve(run, device);
        if (device.type == DeviceType.CUDA) CudnnSettings.ConfigureForTraining(run.Deterministic);
        model.UseCastPolicy(precision.Policy);
        var scaler = precision.UsesLossScaler ? new LossScaler() : null;
        GradientSync gradientSync = GradientSyncChoice();
        using var flat = FlatLayout(model, gradientSync, out string? flatUnavailable);
        using var ddp = new DataParallel(model, group, BucketBytes(), gradientSync, GradientAsBucketViewChoice(), flat);
        ddp.BroadcastState();                                            // every rank starts from rank 0's weights
        using var syncBn = run.SyncBn ? new SyncBatchNorm(model, group) : null;
        bool broadcastBuffers = collective && syncBn is null;             // DDP's broadcast_buffers=True
        var emaModel = new DetectionModel(model.Config);
        emaModel.load_state_dict(model.state_dict());
        emaModel.to(device);
        emaModel.UseCastPolicy(precision.Policy);
        var loss = new DetectionLoss(new DetectionLossOptions
        {
            NumClasses = nc, RegMax = model.RegMax, Strides = model.Strides.ToArray(),
            BoxGain = run.Box, ClsGain = run.Cls, DflGain = run.Dfl,
            // DDP: Σ target scores of the global batch (all-reduce SUM), so every rank divides by the same number.
            ReduceTargetScoresSum = !collective ? null : local =>
            {
                var global = local.clone();
                group.AllReduce(global, ReduceOp.Sum);
                return global;
            },
        });
        // Rank loss = (Σ rank terms / S)·local batch; × W² makes it (Σ rank terms / S)·W·global batch, so that the
        // gradient average over W ranks equals the one-process gradient (Σ terms / S)·global batch.
        double lossScale = (double)world * world;
        int batches = trainLoader.BatchesPerEpoch;
        int accumulate = Math.Max((int)Math.Round((double)run.Nbs / batch, MidpointRounding.ToEven), 1);
        long iterations = (long)Math.Ceiling((double)trainSet.Count / Math.Max(batch, run.Nbs)) * run.Epochs;
        var optimizer = TrainingOptimizer.Create(model, run.Optimizer, run.Lr0, run.Momentum, run.WeightDecay,
            run.WarmupBiasLr, nc, iterations, batch, accumulate, run.Nbs, flat);
        var schedule = new LearningRateSchedule(optimizer.LearningRate, run.Lrf, run.Epochs, run.CosLr, run.WarmupEpochs,
            optimizer.WarmupBiasLr, run.WarmupMomentum, optimizer.Momentum, run.Nbs, batch);

        var state = saved is null
            ? new TrainingState(0, 0, 0, -1, null, 0, 0, ArgsYaml.Serialize(run), runDirectory)
            : Checkpoint.Load(resumeFrom!, model, emaModel, optimizer.Optimizer);
        using var ema = new ModelEma(emaModel, updates: state.EmaUpdates);
        if (flat is not null) ema.UseFlatLayout(model, flat);
        if (scaler is not null && state.LossScaler is { } scalerState) scaler.Restore(scalerState);

        emit?.Invoke(new TrainingStarted(runDirectory, device.ToString(), run.Model ?? TrainingSetup.DefaultModel,
            model.ParameterCount, trainSet.Summary, valSet.Summary, optimizer.Summary, batch, accumulate, run.Imgsz,
            run.Workers, state.Epoch, run.Epochs, saved is not null) { Precision = precision.ToString() });
        if (collective)
            emit?.Invoke(new TrainingMessage($"data parallel: {world} rank(s), {group.Backend} process group, rank batch {rankBatch}"));
        if (flatUnavailable is not null && master) emit?.Invoke(new TrainingMessage(flatUnavailable));
        if (device.type == DeviceType.CUDA && !CudnnSettings.IsAvailable && master)
            emit?.Invoke(new TrainingMessage("cuDNN switches unavailable (libtorch's at::Context symbols not found): autotuning and " +
                "deterministic=True do not reach cuDNN in this run"));

        string csv = Path.Combine(runDirectory, "results.csv");
        string last = Path.Combine(weightsDirectory, "last.safetensors");
        string best = Path.Combine(weightsDirectory, "best.safetensors");
        string checkpoint = Path.Combine(weightsDirectory, "last.ckpt");
        var tensorboard = master ? torch.utils.tensorboard.SummaryWriter(runDirectory) : null;
        var clock = Stopwatch.StartNew();
        var timer = StepTimer.For(device);                               // step-time breakdown → step_times.csv
        double previousSeconds = ReadElapsedSeconds(csv);
        string stopReason = "completed";
        int epoch = state.Epoch;

        // ── epochs ───────────────────────────────────────────────────────────────────────────────
        for (; epoch < run.Epochs; epoch++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            model.train();
            emit?.Invoke(new EpochStarted(epoch, run.Epochs, batches, TrainingSetup.Augmentation(run).MosaicActive(epoch, run.Epochs)));
            bool midEpoch = epoch == state.Epoch && state.BatchInEpoch > 0 && state.EpochMeanLosses is { Length: 3 };
            var meanLosses = midEpoch ? state.EpochMeanLosses!.ToArray() : new double[3];
            int seen = midEpoch ? state.EpochBatchesSeen : 0;
            bool overflowed = false;                                     // fp16: a micro-step since the last optimiser step overflowed
            long iteration = state.Iteration, lastStep = state.LastOptimizerIteration;
            ScheduleValues values = schedule.At(epoch, (int)iteration, batches);
            var epochClock = Stopwatch.StartNew();
            var epochBatches = trainLoader.Epoch(epoch, cancellationToken);
            if (trainLoader.PinsMemory) epochBatches = DevicePrefetch.Ahead(epochBatches, device); // CUDA: one batch in flight
            foreach (Batch trainBatch in timer.Timed(epochBatches))
            {
                using var owned = trainBatch;
                if (epoch == state.Epoch && trainBatch.Index < state.BatchInEpoch) continue; // resumed mid-epoch
                using var scope = NewDisposeScope();
                iteration = trainBatch.Index + (long)batches * epoch;
                values = schedule.At(epoch, (int)iteration, batches);
                optimizer.Apply(values);
                fault?.At(iteration);
                if (broadcastBuffers) ddp.BroadcastBuffers();
                bool stepped = iteration - lastStep >= values.Accumulate;      // the optimiser micro-step
                ddp.BeginMicroStep(synchronize: stepped);

                var images = TrainingInput(trainBatch, device, precision.Policy); // (b, 3, H, W) in [0, 1]
                var targets = new DetectionTargets(trainBatch.BatchIndexOn(device), trainBatch.ClassesOn(device), trainBatch.BoxesOn(device));
                timer.Lap(StepPhase.Copy);
                var maps = model.ForwardFeatures(images);                       // 3 × (b, no, h, w)
                timer.Lap(StepPhase.Forward);
                using var result = loss.Compute(maps, targets);
                var (box, cls, dfl) = result.ItemValues();                      // note: a device → host sync point
                timer.Lap(StepPhase.Loss);
                if (collective)                                                 // Σ over ranks = the global batch's items
                {
                    double[] sums = ddp.SumOverRanks(new double[] { box, cls, dfl });
                    (box, cls, dfl) = ((float)sums[0], (float)sums[1], (float)sums[2]);
                    timer.Lap(StepPhase.AllReduce);
                }
                bool finite = float.IsFinite(box + cls + dfl);              // the same on every rank (global sums)
                if (!finite && scaler is null)
                    throw new InvalidOperationException(
                        $"loss is not finite at epoch {epoch + 1}, batch {trainBatch.Index + 1} (box {box}, cls {cls}, dfl {dfl}); lower lr0 or check the labels");
                // fp16: an overflow in the forward skips this optimiser step and backs the scale off, as GradScaler does
                // with the inf gradients it would give; its losses stay out of the epoch means.
                overflowed |= !finite;
                var total = !collective ? result.Total : result.Total * lossScale;
                if (finite) (scaler is null ? total : scaler.ScaleLoss(total)).backward();  // fp16: scaled loss
                timer.Lap(StepPhase.Backward);
                if (stepped)
                {
                    ddp.AverageGradients();                                     // the only gradient sync
                    if (collective) timer.Lap(StepPhase.AllReduce);
                    OptimizerStep(model, optimizer.Optimizer, ema, scaler, group, skip: overflowed);
                    overflowed = false;
                    timer.Lap(StepPhase.Optimizer);
                    lastStep = iteration;
                }
                if (finite)
                {
                    seen++;
                    meanLosses[0] += (box - meanLosses[0]) / seen;
                    meanLosses[1] += (cls - meanLosses[1]) / seen;
                    meanLosses[2] += (dfl - meanLosses[2]) / seen;
                }
                if (stepped && run.SavePeriodSteps > 0 && ema.Updates % run.SavePeriodSteps == 0 && master && run.Save)
                    Checkpoint.Save(checkpoint, model, emaModel, optimizer.Optimizer, state with
                    {
                        Epoch = epoch, BatchInEpoch = trainBatch.Index + 1, Iteration = iteration + 1,
                        LastOptimizerIteration = lastStep, EmaUpdates = ema.Updates,
                        EpochMeanLosses = meanLosses.ToArray(), EpochBatchesSeen = seen, LossScaler = scaler?.State,
                    });
                if (run.Plots && iteration < 3 && master)
                    RunPlots.Batch(trainBatch, data.Names, Path.Combine(runDirectory, $"train_batch{iteration}.png"));
                emit?.Invoke(new BatchFinished(epoch, run.Epochs, trainBatch.Index, batches, meanLosses.ToArray(),
                    (int)trainBatch.BatchIndex.shape[0], run.Imgsz, epochClock.Elapsed.TotalSeconds));
            }
            IReadOnlyList<double> learningRates = optimizer.GroupLearningRates;
            StepTimes stepTimes = timer.TakeEpoch(epoch + 1);
            if (epoch == state.Epoch && trainLoader.PinMemoryError is { } pinError) emit?.Invoke(new TrainingMessage(pinError));

            // ── validate the EMA, save, log ─────────────────────────────────────────────────────────
            bool finalEpoch = epoch + 1 >= run.Epochs;
            ValidationResult? validation = null;
            if (run.Val || finalEpoch)
            {
                emit?.Invoke(new ValidationStarted(epoch, valLoader.BatchesPerEpoch));
                validation = DetectionValidator.Run(emaModel, valLoader, device, loss: loss,
                    progress: p => emit?.Invoke(new ValidationBatchFinished(p.Batch, p.Batches)), group: group);
            }
            double fitness = validation?.Metrics.Fitness ?? 0;
            bool isBest = state.BestFitness is null || fitness >= state.BestFitness;
            var row = new EpochResult(epoch + 1, previousSeconds + clock.Elapsed.TotalSeconds, meanLosses,
                validation?.Metrics.Precision ?? 0, validation?.Metrics.Recall ?? 0, validation?.Metrics.MAP50 ?? 0,
                validation?.Metrics.MAP50To95 ?? 0, validation?.Losses ?? new double[3], learningRates);
            state = state with
            {
                Epoch = epoch + 1, BatchInEpoch = 0, Iteration = iteration + 1, LastOptimizerIteration = lastStep,
                BestFitness = isBest ? fitness : state.BestFitness,
                EpochsWithoutImprovement = isBest ? 0 : state.EpochsWithoutImprovement + 1, EmaUpdates = ema.Updates,
                EpochMeanLosses = null, EpochBatchesSeen = 0, LossScaler = scaler?.State,
            };
            if (run.Save && master)
            {
                ModelWeights.Save(emaModel, last);
                if (isBest) ModelWeights.Save(emaModel, best);
                if (run.SavePeriod > 0 && (epoch + 1) % run.SavePeriod == 0)
                    ModelWeights.Save(emaModel, Path.Combine(weightsDirectory, $"epoch{epoch + 1}.safetensors"));
                Checkpoint.Save(checkpoint, model, emaModel, optimizer.Optimizer, state);
            }
            if (master)
            {
                ResultsCsv.Append(csv, row);
                StepTimesCsv.Append(Path.Combine(runDirectory, StepTimesCsv.FileName), stepTimes);
                if (run.Plots) RunPlots.Results(csv, Path.Combine(runDirectory, "results.png"));
                LogScalars(tensorboard!, row);
            }
            emit?.Invoke(new EpochFinished(row, validation, isBest, stepTimes));

            if (state.EpochsWithoutImprovement >= run.Patience)
            {
                stopReason = $"no improvement in the last {run.Patience} epochs (patience={run.Patience})";
                epoch++;
                break;
            }
            // Rank 0's clock decides for every rank.
            if (run.Time is double hours && ddp.BroadcastFlag((previousSeconds + clock.Elapsed.TotalSeconds) / 3600 >= hours))
            {
                stopReason = $"time={hours} hours reached";
                epoch++;
                break;
            }
        }

        // ── final: validate the best weights with the per-class table ─────────────────────────────
        ValidationResult? final = null;
        bool haveBest = DataParallel.BroadcastFlag(group, run.Save && master && File.Exists(best));
        if (haveBest)
        {
            // Rank 0 reads best.safetensors; the others get its weights (they may not share its file system).
            var bestModel = master ? ModelFactory.Create(best) : new DetectionModel(model.Config);
            bestModel.to(device);
            DataParallel.BroadcastModule(bestModel, group);
            int plotted = 0;
            final = DetectionValidator.Run(bestModel, valLoader, device, collectPredictions: run.SaveJson, group: group,
                inspectBatch: (valBatch, kept) =>
                {
                    if (!run.Plots || plotted >= 3 || !master) return;
                    RunPlots.Batch(valBatch, data.Names, Path.Combine(runDirectory, $"val_batch{plotted}_labels.png"));
                    RunPlots.Batch(valBatch, data.Names, Path.Combine(runDirectory, $"val_batch{plotted}_pred.png"), kept);
                    plotted++;
                });
            if (run.SaveJson && master) CocoPrediction.WriteJson(Path.Combine(runDirectory, "predictions.json"), final.Predictions);
            if (run.Plots && master)
            {
                RunPlots.PrecisionRecallCurve(final.Evaluator, data.Names, Path.Combine(runDirectory, "PR_curve.png"));
                RunPlots.ConfusionMatrix(final.Confusion, data.Names, Path.Combine(runDirectory, "confusion_matrix.png"), normalize: false);
                RunPlots.ConfusionMatrix(final.Confusion, data.Names, Path.Combine(runDirectory, "confusion_matrix_normalized.png"));
            }
        }
        var finished = new TrainingFinished(runDirectory, last, haveBest ? best : null, epoch,
            (previousSeconds + clock.Elapsed.TotalSeconds) / 3600, stopReason, final, data.Names);
        emit?.Invoke(finished);
        return finished;
    }

    // fp16 (GradScaler's order): unscale, then clip the true gradients; a step with an inf/NaN gradient on any rank is
    // skipped everywhere and the scale backs off. As Ultralytics, the EMA is updated after every optimiser step.
    // With a flat layout every one of these works on the few flat buffers; nothing here waits for the device except the
    // fp16 inf/NaN check.
    // skip: the step is skipped without looking (fp16: the forward overflowed; the same on every rank).
    internal static void OptimizerStep(nn.Module model, GroupedOptimizer optimizer, ModelEma ema, LossScaler? scaler,
        IProcessGroup group, bool skip = false)
    {
        using (var scope = NewDisposeScope())
        {
            var (gradients, device) = Gradients(model, optimizer);
            skip = skip || (scaler?.UnscaleAndCheck(gradients, device, group) ?? false);
            if (!skip)
            {
                GradientClipping.ClipNorm(gradients, MaxGradientNorm, flat: optimizer.Flat is not null);
                optimizer.Step();
            }
            scaler?.Update(skip);
        }
        optimizer.ZeroGrad();
        ema.Update(model);
    }

    // The gradients the optimiser reads: its flat buffers, or every trainable parameter's (handles in the caller's scope).
    static (IReadOnlyList<Tensor> Gradients, Device Device) Gradients(nn.Module model, GroupedOptimizer optimizer)
    {
        if (optimizer.Flat is { } flat)
        {
            flat.AttachGradients();                                       // a gradient something replaced is copied in
            return (flat.GradientBuffers.ToList(), flat.Groups[0].Values.device);
        }
        var trainable = model.parameters().Where(p => p.requires_grad).ToList();
        return (trainable.Select(p => p.grad).OfType<Tensor>().ToList(), trainable.Count > 0 ? trainable[^1].device : CPU);
    }

    /// <summary>
    /// The flat layout of <paramref name="model"/>'s optimiser groups (<see cref="FlatParameters"/>), or null where
    /// <see cref="FlatVariable"/> is 0, the gradient sync overlaps backward (its buckets are per parameter), or the
    /// parameters do not allow it.
    /// </summary>
    internal static FlatParameters? FlatLayout(nn.Module model, GradientSync sync) => FlatLayout(model, sync, out _);

    /// <summary>As <see cref="FlatLayout(nn.Module, GradientSync)"/>; <paramref name="unavailable"/> says why there is none
    /// where one was wanted (null when there is one, or when it was not wanted).</summary>
    internal static FlatParameters? FlatLayout(nn.Module model, GradientSync sync, out string? unavailable)
    {
        unavailable = null;
        bool wanted = Environment.GetEnvironmentVariable(FlatVariable)?.Trim().ToLowerInvariant() switch
        {
            null or "" or "1" or "true" => true,
            "0" or "false" => false,
            string other => throw new ArgumentsException($"{FlatVariable}={other}: use 1 (flat buffers) or 0 (per parameter)"),
        };
        if (!wanted || sync == GradientSync.Overlapped) return null;
        var groups = ParameterGroups.Of(model);
        var flat = FlatParameters.TryCreate(new[] { groups.Biases, groups.Weights, groups.NormWeights }, model, out string? reason);
        if (flat is null) unavailable = $"flat parameter layout unavailable ({reason}): the optimiser steps per parameter";
        return flat;
    }

    /// <summary>The batch's images as float in [0, 1], channels-last when the policy asks (converted after the float conversion, so the prefetched device copy is used).</summary>
    static Tensor TrainingInput(Batch batch, Device device, CastPolicy policy)
    {
        var images = batch.ImagesAsFloat(device);                       // uses the prefetched device copy when there is one
        if (!policy.ChannelsLast) return images;
        using (images) return CastPolicy.ToChannelsLast(images);
    }

    /// <summary>Batches for <see cref="BatchNormCalibration"/>: the first few training batches of epoch 0.</summary>
    static IEnumerable<Tensor> CalibrationImages(DataLoader loader, Device device, int batches = 8)
    {
        foreach (Batch batch in loader.Epoch(0).Take(batches))
        {
            using var owned = batch;
            using var images = batch.ImagesAsFloat(device);
            yield return images;
        }
    }

    static GradientSync GradientSyncChoice() => Environment.GetEnvironmentVariable(GradientSyncVariable)?.Trim().ToLowerInvariant() switch
    {
        null or "" => DataParallel.DefaultSync,
        "overlap" or "overlapped" => GradientSync.Overlapped,
        "post" or "post-backward" => GradientSync.PostBackward,
        string other => throw new ArgumentsException($"{GradientSyncVariable}={other}: use overlap or post"),
    };

    /// <summary><see cref="GradientViewVariable"/>'s choice.</summary>
    /// <exception cref="ArgumentsException">Neither 0 nor 1.</exception>
    internal static bool GradientAsBucketViewChoice() => Environment.GetEnvironmentVariable(GradientViewVariable)?.Trim().ToLowerInvariant() switch
    {
        null or "" => DataParallel.DefaultGradientAsBucketView,
        "1" or "true" => true,
        "0" or "false" => false,
        string other => throw new ArgumentsException($"{GradientViewVariable}={other}: use 1 (gradients in the buckets) or 0 (copied)"),
    };

    static long BucketBytes()
    {
        string? text = Environment.GetEnvironmentVariable(BucketVariable);
        if (string.IsNullOrWhiteSpace(text)) return DataParallel.DefaultBucketBytes;
        if (!double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double mb) || !(mb > 0))
            throw new ArgumentsException($"{BucketVariable}={text}: expected a positive number of MB");
        return Math.Max(1, (long)(mb * 1024 * 1024));
    }

    static string? ResumePath(OspreyArgs args) => args.Resume.ToLowerInvariant() switch
    {
        "false" or "0" or "no" or "" => null,
        "true" or "1" or "yes" => TrainingSetup.FindLastCheckpoint(args.Project),
        _ => File.Exists(args.Resume) ? args.Resume : throw new FileNotFoundException($"resume={args.Resume}: no such checkpoint", args.Resume),
    };

    // Ultralytics resumes with the checkpoint's arguments; only where to run may change.
    static OspreyArgs ResumedArgs(OspreyArgs given, string checkpoint)
    {
        var saved = ArgsYaml.Deserialize(Checkpoint.ReadState(checkpoint).Args);
        saved.Resume = checkpoint;
        if (given.Device is not null) saved.Device = given.Device;
        saved.Workers = given.Workers;
        return saved;
    }

    static double ReadElapsedSeconds(string csv) =>
        File.Exists(csv) ? ResultsCsv.Read(csv).LastOrDefault()?["time"] ?? 0 : 0;

    static void LogScalars(TorchSharp.Modules.SummaryWriter writer, EpochResult row)
    {
        string[] names = ResultsCsv.Columns.Skip(2).ToArray();
        var values = row.TrainLosses.Concat(new[] { row.Precision, row.Recall, row.Map50, row.Map50To95 })
            .Concat(row.ValLosses).Concat(row.LearningRates).ToArray();
        for (int i = 0; i < names.Length; i++) writer.add_scalar(names[i], (float)values[i], row.Epoch);
    }
}

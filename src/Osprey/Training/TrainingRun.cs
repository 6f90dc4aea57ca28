using System.Diagnostics;
using Osprey.Config;
using Osprey.Data;
using Osprey.Distributed;
using Osprey.IO;
using Osprey.Losses;
using Osprey.Interop;
using Osprey.Models;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// Everything a training run is made of, set up once by <see cref="Setup"/> (Ultralytics' <c>_setup_train</c>): the
/// resolved arguments, the device and the ranks, the run folder, the data, the model and its EMA, the loss, the optimiser
/// and its schedule, the <see cref="TrainStep"/>, and where the run stands (<see cref="State"/>). The trainer's lifecycle
/// and the callbacks read it; the trainer alone advances <see cref="State"/>; a callback may <see cref="RequestStop"/>.
/// </summary>
public sealed class TrainingRun : IDisposable
{
    readonly Stopwatch _clock = new();
    readonly List<string> _setupLog = new();
    double _previousSeconds;

    TrainingRun(OspreyArgs args, Device device, DataParallel parallel) => (Args, Device, Parallel) = (args, device, parallel);

    /// <summary>The run's arguments, resolved (device defaults, AutoBatch's batch; a resumed run's own).</summary>
    public OspreyArgs Args { get; private set; }

    /// <summary>Where this rank computes.</summary>
    public Device Device { get; }

    /// <summary>The ranks (one process: a world of one).</summary>
    public DataParallel Parallel { get; }

    /// <summary>This rank writes the run's files and reports (rank 0).</summary>
    public bool IsMain => Parallel.IsMain;

    /// <summary>The run folder's files.</summary>
    public RunFiles Files { get; private set; } = null!;

    /// <summary>The dataset's YAML.</summary>
    public DatasetConfig Data { get; private set; } = null!;

    /// <summary>The train split and this rank's loader of it.</summary>
    public DataLoader TrainLoader { get; private set; } = null!;

    /// <summary>The validation split and this rank's loader of it (rank batch × 2).</summary>
    public DataLoader ValLoader { get; private set; } = null!;

    /// <summary>The training augmentation.</summary>
    public AugmentOptions Augmentation { get; private set; } = null!;

    /// <summary>The trained model.</summary>
    public DetectionModel Model { get; private set; } = null!;

    /// <summary>The EMA of the model: what validation and saving use.</summary>
    public ModelEma Ema { get; private set; } = null!;

    /// <summary>The averaged model (<see cref="Ema"/>'s module).</summary>
    public DetectionModel EmaModel { get; private set; } = null!;

    /// <summary>The loss (its normaliser summed over the ranks); validation uses it too.</summary>
    public IDetectionLoss Loss { get; private set; } = null!;

    /// <summary>The optimiser with Ultralytics' parameter groups.</summary>
    public TrainingOptimizer Optimizer { get; private set; } = null!;

    /// <summary>Learning rate, momentum and accumulation per iteration.</summary>
    public LearningRateSchedule Schedule { get; private set; } = null!;

    /// <summary>How the model computes (fp32, bf16, fp16) and why.</summary>
    public PrecisionChoice Precision { get; private set; } = null!;

    /// <summary>fp16 loss scaling, or null.</summary>
    public LossScaler? Scaler { get; private set; }

    /// <summary>One micro-step.</summary>
    public TrainStep Step { get; private set; } = null!;

    /// <summary>The step-time breakdown of the epochs (step_times.csv).</summary>
    public StepTimer Timer { get; private set; } = null!;

    /// <summary>Where the run stands (saved in checkpoints); advanced by the trainer.</summary>
    public TrainingState State { get; internal set; } = null!;

    /// <summary>True when the run continues from a checkpoint.</summary>
    public bool Resumed { get; private set; }

    /// <summary>Training batches per epoch on every rank.</summary>
    public int BatchesPerEpoch => TrainLoader.BatchesPerEpoch;

    /// <summary>Wall time of the run in seconds, earlier launches of a resumed run included.</summary>
    public double ElapsedSeconds => _previousSeconds + _clock.Elapsed.TotalSeconds;

    /// <summary>Why a callback asked the run to stop after this epoch (the first request wins), or null.</summary>
    public string? StopReason { get; private set; }

    /// <summary>Lines set-up logged before the run started (AutoBatch's), in order.</summary>
    public IReadOnlyList<string> SetupLog => _setupLog;

    /// <summary>Terms added to the loss (<see cref="AddLossTerm"/>): none for a plain run.</summary>
    public IReadOnlyList<ILossTerm> LossTerms => _lossTerms;

    /// <summary>The loss items' names: box_loss, cls_loss, dfl_loss, then the terms' (dis_loss).</summary>
    public IReadOnlyList<string> LossNames => new[] { "box_loss", "cls_loss", "dfl_loss" }.Concat(_lossTerms.Select(t => t.Name)).ToArray();

    /// <summary>
    /// Adds a term to the loss: only while set-up publishes <see cref="ModelBuilt"/> (before the optimiser's layout), and
    /// on every rank alike.
    /// </summary>
    public void AddLossTerm(ILossTerm term)
    {
        if (Flat is not null) throw new InvalidOperationException("a loss term can only be added while the run is set up (ModelBuilt)");
        _lossTerms.Add(term);
    }

    readonly List<ILossTerm> _lossTerms = new();
    IReadOnlyList<nn.Module>? TermModules => _lossTerms.Count == 0 ? null : _lossTerms.Select(t => t.Trainable).ToList();
    IReadOnlyList<(string, nn.Module)>? TermState => _lossTerms.Count == 0 ? null : _lossTerms.Select(t => (t.Name, t.Trainable)).ToList();

    internal Replica Replica { get; private set; } = null!;
    internal FlatParameters Flat { get; private set; } = null!;
    internal FaultInjection? Fault { get; private set; }

    /// <summary>Asks the run to end after the current epoch (patience, a time limit, a tuner); the first reason is kept.
    /// Under data parallel the main rank's request decides for every rank.</summary>
    public void RequestStop(string reason) => StopReason ??= reason;

    /// <summary>Tells the run's events a line (a <see cref="TrainingMessage"/>, which the command line prints): how a callback
    /// reports, a warning included (the library never prints).</summary>
    public void Message(string text) => Messages?.Invoke(text);

    internal Action<string>? Messages { get; set; }

    /// <summary>The main rank's <see cref="StopReason"/>, on every rank (collective).</summary>
    internal string? AgreedStop() => Parallel.MainDecides(StopReason);

    /// <summary>The batches of <paramref name="epoch"/> (CUDA with pinned memory: one batch copied ahead).</summary>
    internal IEnumerable<Batch> Batches(int epoch, CancellationToken cancellationToken)
    {
        var batches = TrainLoader.Epoch(epoch, cancellationToken);
        return TrainLoader.PinsMemory ? DevicePrefetch.Ahead(batches, Device) : batches;
    }

    /// <summary>
    /// Sets the run up: <paramref name="requested"/> resolved for <paramref name="device"/>, the run folder (rank 0 makes it),
    /// the seed, the data sharded over the ranks, the model on the device under the run's precision, its flat parameter
    /// layout and replica, the EMA, the loss, the optimiser and schedule, and the state of a resumed run.
    /// </summary>
    /// <param name="requested">The arguments (a resumed run's own, <see cref="TrainingSetup.Resume"/>).</param>
    /// <param name="resumeFrom">The checkpoint a resumed run continues from, or null.</param>
    /// <param name="device">This rank's device.</param>
    /// <param name="parallel">The ranks.</param>
    /// <param name="modelBuilt">Called once the model is built, before the optimiser's layout (the trainer publishes
    /// <see cref="ModelBuilt"/> there), or null.</param>
    public static TrainingRun Setup(OspreyArgs requested, string? resumeFrom, Device device, DataParallel parallel,
        Action<TrainingRun>? modelBuilt = null)
    {
        var run = new TrainingRun(TrainingSetup.ResolveDefaults(requested, device.type == DeviceType.CPU), device, parallel);
        try
        {
            TrainingSetup.RejectUnsupported(run.Args);
            run.Data = DatasetCatalog.Resolve(run.Args.Data!);
            TrainingState? saved = resumeFrom is null ? null : Checkpoint.ReadState(resumeFrom);
            run.SetUpFolder(saved);
            // deterministic=True needs no switch here: TorchSharp 0.107 has no use_deterministic_algorithms, and the CPU
            // kernels used are deterministic for a fixed thread count (the resume test checks bit-exactness).
            torch.manual_seed(run.Args.Seed);
            run.SetUpData();
            run.SetUpModel(saved is null, modelBuilt);
            run.SetUpOptimisation(resumeFrom);
            return run;
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    // Global batch (AutoBatch for batch=-1 or a fraction: the checkpoint keeps the batch chosen, as Ultralytics, so a resumed
    // run does not measure again), the run folder rank 0 makes (or the resumed run's), args.yaml.
    void SetUpFolder(TrainingState? saved)
    {
        int batch = AutoBatch.Resolve(Args.Batch, Args.Imgsz, Device, Parallel, ProbeModel, _setupLog.Add);
        if (batch % Parallel.World != 0)
            throw new ArgumentsException($"batch={batch} does not split evenly over {Parallel.World} ranks: use a multiple of {Parallel.World}");
        Args = Args with { Batch = batch };
        string folder = saved?.RunDirectory ?? Parallel.MainDecides(IsMain ? RunDirectory.Create(Args.Project, Args.Name, "train", Args.ExistOk) : null)!;
        Files = new RunFiles(folder);
        if (IsMain) Directory.CreateDirectory(Files.Weights);
        if (saved is null && IsMain) AtomicFile.WriteAllText(Files.Args, ArgsYaml.Serialize(Args));
        Fault = FaultInjection.FromEnvironment(Parallel.Rank);
        Resumed = saved is not null;
        _previousSeconds = File.Exists(Files.Results) ? ResultsCsv.Read(Files.Results).LastOrDefault()?["time"] ?? 0 : 0;
    }

    // AutoBatch's probe (CUDA only): the model as it will train, under the run's cast policy and layout (Ultralytics profiles
    // under autocast).
    IDeviceMemoryProbe ProbeModel()
    {
        var probe = TrainingSetup.CreateModel(Args.Model, Data.ClassCount);
        probe.to(Device);
        return new CudaMemoryProbe(probe, Device, Args.Imgsz, MixedPrecision.Resolve(Args, Device).Policy);
    }

    // The train and validation splits, each rank loading its share.
    void SetUpData()
    {
        int rankBatch = (int)Args.Batch / Parallel.World;
        Augmentation = TrainingSetup.Augmentation(Args);
        TrainLoader = DataLoader.ForTraining(DetectionDataset.Load(Data, DatasetSplit.Train, new DatasetLoadOptions(Fraction: Args.Fraction)), Parallel.Shard(new LoaderOptions(
            ImageSize: Args.Imgsz, BatchSize: rankBatch, Workers: Math.Max(Args.Workers, 1), Seed: Args.Seed, Cache: Args.Cache,
            Augment: Augmentation, Epochs: Args.Epochs, PinMemory: TrainingSetup.PinMemory(Device),
            SampleDelay: FaultInjection.DataDelay(), DeviceAugment: Args.GpuAugment)));
        ValLoader = DataLoader.ForValidation(DetectionDataset.Load(Data, DatasetSplit.Val), Parallel.Shard(new LoaderOptions(
            ImageSize: Args.Imgsz, BatchSize: rankBatch * 2, Workers: Math.Max(Args.Workers, 1), Seed: Args.Seed, Cache: Args.Cache)));
    }

    // The model on its device under the run's precision (fp32 master weights, BN statistics, loss, optimiser and EMA; on
    // CUDA channels-last and cuDNN autotuning), its flat layout and replica, and the EMA model, which computes the same way
    // (so per-epoch validation runs in the compute dtype, as Ultralytics' half-precision validation during training).
    void SetUpModel(bool fresh, Action<TrainingRun>? modelBuilt)
    {
        Model = TrainingSetup.CreateModel(Args.Model, Data.ClassCount, fresh ? _setupLog.Add : null);
        if (fresh && Args.Pretrained.Weights is { } weights)                // Ultralytics' pretrained=path: intersect_dicts
            _setupLog.Add($"Transferred {ModelWeights.LoadMatching(Model, weights)}/{Model.state_dict().Count} items from pretrained weights");
        TrainingSetup.Freeze(Model, Args.Freeze);
        Model.to(Device);
        if (fresh && Path.GetExtension(Args.Model ?? "").Equals(".onnx", StringComparison.OrdinalIgnoreCase))
            BatchNormCalibration.Calibrate(Model, CalibrationImages(TrainLoader, Device)); // BN-fused import: see there
        Precision = MixedPrecision.Resolve(Args, Device);
        if (Device.type == DeviceType.CUDA) CudnnSettings.ConfigureForTraining(Args.Deterministic);
        Model.UseCastPolicy(Precision.Policy);
        Scaler = Precision.UsesLossScaler ? new LossScaler(Parallel) : null;
        modelBuilt?.Invoke(this);                                        // a callback may add loss terms here
        Flat = FlatParameters.For(Model, TermModules);
        Replica = Parallel.Wrap(Model, Flat, Args.SyncBn);               // every rank starts from rank 0's weights
        EmaModel = new DetectionModel(Model.Config, Model.Registry);
        EmaModel.load_state_dict(Model.state_dict());
        EmaModel.Trained = new TrainedOn(Args.Data, Data.Names);      // in the saved weights' header (an export's description)
        EmaModel.to(Device);
        EmaModel.UseCastPolicy(Precision.Policy);
        Loss = Model.Head.CreateLoss(new DetectionLossOptions
        {
            NumClasses = Data.ClassCount, RegMax = Model.RegMax, Strides = Model.Strides.ToArray(),
            BoxGain = Args.Box, ClsGain = Args.Cls, DflGain = Args.Dfl, GlobalSum = Parallel.SumOverRanks,
        });
    }

    // Ultralytics' optimiser, schedule and accumulation to the nominal batch; the resumed state; the EMA; the step.
    void SetUpOptimisation(string? resumeFrom)
    {
        int batch = (int)Args.Batch;
        int accumulate = LearningRateSchedule.AccumulateFor(Args.Nbs, batch);
        long iterations = (long)Math.Ceiling((double)TrainLoader.Dataset.Count / Math.Max(batch, Args.Nbs)) * Args.Epochs;
        Optimizer = TrainingOptimizer.Create(Model, Args.Optimizer, Args.Lr0, Args.Momentum, Args.WeightDecay,
            Args.WarmupBiasLr, Data.ClassCount, iterations, batch, accumulate, Args.Nbs, Flat, TermModules);
        Schedule = new LearningRateSchedule(Optimizer.LearningRate, Args.Lrf, Args.Epochs, Args.CosLr, Args.WarmupEpochs,
            Optimizer.WarmupBiasLr, Args.WarmupMomentum, Optimizer.Momentum, Args.Nbs, batch);
        var decays = Optimizer.Optimizer.Groups.Select(g => g.WeightDecay).ToArray();   // this batch's (a resume may change it)
        State = resumeFrom is null
            ? new TrainingState(0, 0, 0, -1, null, 0, 0, ArgsYaml.Serialize(Args), Files.Directory, World: Parallel.World, Batch: batch)
            : ElasticResume.Continue(this, Checkpoint.Load(resumeFrom, Model, EmaModel, Optimizer.Optimizer, TermState), decays, _setupLog.Add);
        Ema = new ModelEma(EmaModel, updates: State.EmaUpdates);
        Ema.UseFlatLayout(Model, Flat);
        if (Scaler is not null && State.LossScaler is { } scalerState) Scaler.Restore(scalerState);
        Step = new TrainStep(Model, Replica, Loss, new WeightUpdate(Model, Optimizer.Optimizer, Ema, Scaler), Scaler, _lossTerms);
        Timer = StepTimer.For(Device);
        _clock.Start();
    }

    /// <summary>The event that starts the run, and the notes that follow it.</summary>
    internal (TrainingStarted Started, IReadOnlyList<string> Notes) Started()
    {
        var started = new TrainingStarted(Files.Directory, Device.ToString(), Args.Model ?? TrainingSetup.DefaultModel,
            Model.ParameterCount, TrainLoader.Dataset.Summary, ValLoader.Dataset.Summary, Optimizer.Summary, (int)Args.Batch,
            Schedule.Accumulate, Args.Imgsz, Args.Workers, State.Epoch, Args.Epochs, Resumed) { Precision = Precision.ToString(), LossNames = LossNames };
        var notes = new List<string>();
        if (Parallel.Description is { } ranks) notes.Add($"{ranks}, rank batch {(int)Args.Batch / Parallel.World}");
        if (Device.type == DeviceType.CUDA && !CudnnSettings.IsAvailable)
            notes.Add("cuDNN switches unavailable (libtorch's at::Context symbols not found): autotuning and " +
                "deterministic=True do not reach cuDNN in this run");
        return (started, notes);
    }

    /// <summary>Writes the full-state checkpoint (weights/last.ckpt) at <paramref name="state"/>.</summary>
    internal void SaveCheckpoint(TrainingState state) => Checkpoint.Save(Files.Checkpoint, Model, EmaModel, Optimizer.Optimizer, state, TermState);

    /// <summary>The end of an epoch's files: last, best (when it is), epochN (save_period), the checkpoint.</summary>
    internal void SaveEpoch(int epoch, bool isBest)
    {
        ModelWeights.Save(EmaModel, Files.Last);
        if (isBest) ModelWeights.Save(EmaModel, Files.Best);
        if (Args.SavePt)                                                 // Python-readable copies (docs/interop.md)
        {
            var metadata = new CheckpointMetadata(epoch, State.BestFitness, CheckpointYaml.ToDict(ArgsYaml.Serialize(Args)));
            UltralyticsCheckpointWriter.Save(EmaModel, Files.TorchCheckpoint(Files.Last), metadata);
            if (isBest) UltralyticsCheckpointWriter.Save(EmaModel, Files.TorchCheckpoint(Files.Best), metadata);
        }
        if (Args.SavePeriod > 0 && (epoch + 1) % Args.SavePeriod == 0) ModelWeights.Save(EmaModel, Files.EpochWeights(epoch + 1));
        SaveCheckpoint(State);
    }

    /// <summary>Whether the main rank saved best weights (decided there, for every rank).</summary>
    internal bool HasBest() => Parallel.MainDecides(Args.Save && IsMain && File.Exists(Files.Best));

    /// <summary>best.safetensors on this rank's device: read by rank 0, its weights sent to the others (they may not share
    /// its file system).</summary>
    internal DetectionModel LoadBest()
    {
        var best = IsMain ? ModelFactory.Create(Files.Best) : new DetectionModel(Model.Config, Model.Registry);
        best.to(Device);
        Parallel.BroadcastModule(best);
        return best;
    }

    // Batches for BatchNormCalibration: the first few training batches of epoch 0.
    static IEnumerable<Tensor> CalibrationImages(DataLoader loader, Device device, int batches = 8)
    {
        foreach (Batch batch in loader.Epoch(0).Take(batches))
        {
            using var owned = batch;
            using var images = batch.ImagesAsFloat(device);
            yield return images;
        }
    }

    /// <summary>Frees the loaders, the replica, the optimiser's state, the EMA's and the flat buffers.</summary>
    public void Dispose()
    {
        Optimizer?.Optimizer.Dispose();
        Replica?.Dispose();
        Ema?.Dispose();
        Flat?.Dispose();
        TrainLoader?.Dispose();
        ValLoader?.Dispose();
    }
}

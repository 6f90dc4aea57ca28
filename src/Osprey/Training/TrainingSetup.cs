using Osprey.Config;
using Osprey.Data;
using Osprey.Models;
using TorchSharp;

namespace Osprey.Training;

/// <summary>Argument checks and resolution shared by train (and, later, the data-parallel launcher).</summary>
public static class TrainingSetup
{
    /// <summary>The model a run starts from when none is given.</summary>
    public const string DefaultModel = "yolov8n.yaml";

    /// <summary>Ultralytics' switch for pinned loader memory (environment variable, default True).</summary>
    public const string PinMemoryVariable = "PIN_MEMORY";

    /// <summary>
    /// Whether training on <paramref name="device"/> collates into pinned memory and prefetches batches to it: on CUDA
    /// unless <c>PIN_MEMORY=False</c> (Ultralytics' variable); never on the CPU, where there is nothing to copy.
    /// </summary>
    public static bool PinMemory(torch.Device device) =>
        device.type == DeviceType.CUDA
        && !string.Equals(Environment.GetEnvironmentVariable(PinMemoryVariable)?.Trim(), "false", StringComparison.OrdinalIgnoreCase);

    /// <summary>Image size <c>data=shapes</c> trains at on the CPU unless imgsz is given.</summary>
    public const int ShapesCpuImageSize = 128;

    /// <summary>Epochs <c>data=shapes</c> trains on the CPU unless epochs is given.</summary>
    public const int ShapesCpuEpochs = 20;

    /// <summary>
    /// The arguments a run actually uses. Like Ultralytics, data workers are capped at the core count. On the CPU,
    /// the built-in <c>shapes</c> set picks a small image size and few epochs for every argument not given
    /// explicitly, so that <c>osprey train data=shapes</c> finishes in minutes on 2 cores.
    /// </summary>
    public static OspreyArgs ResolveDefaults(OspreyArgs args, bool cpu)
    {
        bool shapes = cpu && DatasetCatalog.IsShapes(args.Data);
        return args with
        {
            Workers = Math.Min(args.Workers, Environment.ProcessorCount),
            Imgsz = shapes && !args.IsGiven("imgsz") ? ShapesCpuImageSize : args.Imgsz,
            Epochs = shapes && !args.IsGiven("epochs") ? ShapesCpuEpochs : args.Epochs,
        };
    }

    /// <summary>Fails on arguments that Osprey does not implement yet, instead of silently ignoring them.</summary>
    public static void RejectUnsupported(OspreyArgs args)
    {
        if (args.Data is null) throw new ArgumentsException("train needs data=… (a dataset YAML, or data=shapes)");
        if (args.Epochs < 1) throw new ArgumentsException($"epochs={args.Epochs}: must be at least 1");
        if (args.Imgsz < 32 || args.Imgsz % 32 != 0)
            throw new ArgumentsException($"imgsz={args.Imgsz}: must be a positive multiple of 32 (the largest stride)");
        if (args.Rect) throw new ArgumentsException("rect=True is not supported yet");
        if (args.SingleCls) throw new ArgumentsException("single_cls=True is not supported yet");
        if (!(args.Fraction > 0 && args.Fraction <= 1))
            throw new ArgumentsException($"fraction={args.Fraction.ToString(System.Globalization.CultureInfo.InvariantCulture)}: must be in (0, 1] (the share of the training images used)");
        if (args.GpuAugment && args.Mixup > 0)
            throw new ArgumentsException($"mixup={args.Mixup.ToString(System.Globalization.CultureInfo.InvariantCulture)} is not supported with gpu_augment=True: use mixup=0.0 or gpu_augment=False");
    }

    /// <summary>The training augmentation of <paramref name="args"/>.</summary>
    public static AugmentOptions Augmentation(OspreyArgs args) => new(
        Mosaic: args.Mosaic, Degrees: args.Degrees, Translate: args.Translate, Scale: args.Scale, Shear: args.Shear,
        Perspective: args.Perspective, HsvH: args.HsvH, HsvS: args.HsvS, HsvV: args.HsvV, FlipLR: args.Fliplr,
        FlipUD: args.Flipud, Mixup: args.Mixup, CloseMosaic: args.CloseMosaic);

    /// <summary>
    /// The starting model: a YAML gets the dataset's class count; weights are loaded, and transferred where the
    /// class count differs (Ultralytics' intersect_dicts).
    /// </summary>
    public static DetectionModel CreateModel(string? model, int nc) => CreateModel(model, nc, null);

    /// <summary>
    /// As <see cref="CreateModel(string?, int)"/>; an Ultralytics <c>.pt</c> checkpoint (its yaml, the dataset's nc, every
    /// tensor whose key and shape match: Ultralytics' warm start) adds its "Transferred N/M items" line to <paramref name="log"/>.
    /// </summary>
    public static DetectionModel CreateModel(string? model, int nc, Action<string>? log)
    {
        if (model is not null && Path.GetExtension(model).ToLowerInvariant() is ".pt" or ".pth" && File.Exists(model)
            && ModelFactory.FromCheckpoint(model, nc) is { } checkpoint)
        {
            log?.Invoke($"Transferred {checkpoint.Transferred}/{checkpoint.Model.state_dict().Count} items from pretrained weights");
            return checkpoint.Model;
        }
        return ModelFactory.Create(model ?? DefaultModel, nc);
    }

    /// <summary>
    /// Freezes parameters as Ultralytics does: always the DFL projection; <c>freeze=N</c> the first N layers,
    /// <c>freeze=0,3,5</c> those layer indices.
    /// </summary>
    public static void Freeze(DetectionModel model, FreezeLayers? freeze)
    {
        var prefixes = new List<string> { ".dfl" };
        if (freeze is not null) prefixes.AddRange(freeze.Indices.Select(i => $"model.{i}."));
        foreach (var (name, parameter) in model.named_parameters())
            if (prefixes.Any(p => p.StartsWith('.') ? name.Contains(p, StringComparison.Ordinal) : name.StartsWith(p, StringComparison.Ordinal)))
                parameter.requires_grad = false;
    }

    /// <summary>
    /// The arguments a run uses and the checkpoint it resumes from (null for a fresh run). Ultralytics resumes with the
    /// checkpoint's arguments; only where to run (device, workers) may change, and (elastic training) the ranks
    /// (<c>nproc</c>, <c>min_ranks</c>) and the global <c>batch</c>, when given: the checkpoint's own batch otherwise.
    /// </summary>
    public static (OspreyArgs Args, string? ResumeFrom) Resume(OspreyArgs args)
    {
        string? checkpoint = ResumeCheckpoint(args);
        if (checkpoint is null) return (args, null);
        TrainingState state = Checkpoint.ReadState(checkpoint);
        var saved = ArgsYaml.Deserialize(state.Args);
        return (saved with
        {
            Resume = ResumeSetting.From(checkpoint), Device = args.Device ?? saved.Device, Workers = args.Workers,
            Batch = args.IsGiven("batch") ? args.Batch : state.Batch > 0 ? state.Batch : saved.Batch,
            Nproc = args.IsGiven("nproc") ? args.Nproc : saved.Nproc, MinRanks = args.IsGiven("min_ranks") ? args.MinRanks : saved.MinRanks,
        }, checkpoint);
    }

    /// <summary>The checkpoint <c>resume=</c> names: none (False), the newest under the project (True), or the path given.</summary>
    /// <exception cref="FileNotFoundException">There is no such checkpoint.</exception>
    public static string? ResumeCheckpoint(OspreyArgs args) => args.Resume switch
    {
        { Checkpoint: { } path } => File.Exists(path) ? path : throw new FileNotFoundException($"resume={path}: no such checkpoint", path),
        { Latest: true } => FindLastCheckpoint(args.Project),
        _ => null,
    };

    /// <summary>The newest weights/last.ckpt under runs/ (for <c>resume=True</c>).</summary>
    public static string FindLastCheckpoint(string? project)
    {
        string root = project ?? "runs";
        if (!Directory.Exists(root)) throw new FileNotFoundException($"resume=True: no runs under {Path.GetFullPath(root)}");
        return Directory.EnumerateFiles(root, "last.ckpt", SearchOption.AllDirectories)
            .OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault()
            ?? throw new FileNotFoundException($"resume=True: no weights/last.ckpt under {Path.GetFullPath(root)}");
    }
}

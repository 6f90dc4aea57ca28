using System.ComponentModel;

namespace Osprey.Config;

/// <summary>
/// Every argument an <c>osprey</c> command takes, with Ultralytics' names and defaults (its default.yaml). The
/// snake_case key of a property is derived from its name (<c>WarmupBiasLr</c> → <c>warmup_bias_lr</c>); see
/// <see cref="ArgsSchema"/>. The resolved object is saved as args.yaml beside each run.
/// </summary>
public sealed class OspreyArgs
{
    // ── what to run on ─────────────────────────────────────────────────────────────────────────
    [Description("model: a YAML (yolov8n.yaml … yolov8x.yaml are built in) or weights (.safetensors, .pt)")]
    public string? Model { get; set; }
    [Description("dataset YAML, or 'shapes' for the built-in synthetic set")]
    public string? Data { get; set; }
    [Description("device: cpu, cuda, 0, or 0,1,2,3 (default: cuda:0 when available, else cpu)")]
    public string? Device { get; set; }
    [Description("override the number of classes of a model YAML")]
    public int? Nc { get; set; }

    // ── training ──────────────────────────────────────────────────────────────────────────────
    [Description("number of epochs")] public int Epochs { get; set; } = 100;
    [Description("maximum training time in hours (overrides epochs)")] public double? Time { get; set; }
    [Description("epochs without improvement before stopping early")] public int Patience { get; set; } = 100;
    [Description("global batch size; -1: AutoBatch at 60% of CUDA memory, 0<batch<1: at that fraction")] public double Batch { get; set; } = 16;
    [Description("image size")] public int Imgsz { get; set; } = 640;
    [Description("save checkpoints and results")] public bool Save { get; set; } = true;
    [Description("save a checkpoint every N epochs (-1: off)")] public int SavePeriod { get; set; } = -1;
    [Description("save a full-state checkpoint every N optimiser steps (-1: off)")] public int SavePeriodSteps { get; set; } = -1;
    [Description("cache decoded images: false, ram or disk")] public string Cache { get; set; } = "false";
    [Description("data loader worker threads (per rank)")] public int Workers { get; set; } = 8;
    [Description("project folder (default runs/detect)")] public string? Project { get; set; }
    [Description("run name (default train, val, predict … with a number)")] public string? Name { get; set; }
    [Description("reuse an existing run folder")] public bool ExistOk { get; set; }
    [Description("start from pretrained weights: true/false or a weights path")] public string Pretrained { get; set; } = "true";
    [Description("optimizer: SGD, AdamW or auto")] public string Optimizer { get; set; } = "auto";
    [Description("print more, and stack traces on errors")] public bool Verbose { get; set; }
    [Description("random seed")] public int Seed { get; set; }
    [Description("deterministic algorithms")] public bool Deterministic { get; set; } = true;
    [Description("treat the dataset as one class")] public bool SingleCls { get; set; }
    [Description("rectangular validation batches")] public bool Rect { get; set; }
    [Description("cosine learning-rate schedule")] public bool CosLr { get; set; }
    [Description("turn mosaic off for the last N epochs")] public int CloseMosaic { get; set; } = 10;
    [Description("augment on the training device (mosaic, affine, HSV, flips as tensor ops; the loader only decodes); Osprey's, not Ultralytics'")]
    public bool GpuAugment { get; set; }
    [Description("resume: true (last run) or a checkpoint path")] public string Resume { get; set; } = "false";
    [Description("mixed precision on CUDA")] public bool Amp { get; set; } = true;
    [Description("mixed-precision dtype: auto (bf16 where the GPU has it, else fp16), bf16 or fp16; given on the CPU it turns amp on there")]
    public string AmpDtype { get; set; } = "auto";
    [Description("fraction of the training set to use")] public double Fraction { get; set; } = 1.0;
    [Description("freeze the first N layers, or a list of layer indices")] public string? Freeze { get; set; }
    [Description("dropout (classification only)")] public double Dropout { get; set; }
    [Description("validate during training")] public bool Val { get; set; } = true;
    [Description("split to validate on: val, test or train")] public string Split { get; set; } = "val";
    [Description("write predictions.json (COCO format)")] public bool SaveJson { get; set; }
    [Description("plot results, curves and batches")] public bool Plots { get; set; } = true;

    // ── data parallel ─────────────────────────────────────────────────────────────────────────
    [Description("processes to start on this machine for CPU data parallelism")] public int Nproc { get; set; } = 1;
    [Description("synchronised BatchNorm across ranks")] public bool SyncBn { get; set; }
    [Description("relaunch all ranks from the newest checkpoint up to N times")] public int MaxRestarts { get; set; }

    // ── benchmarks (osprey bench ddp) ─────────────────────────────────────────────────────────
    [Description("bench ddp: timed training steps per world size (after 2 warm-up steps)")] public int Steps { get; set; } = 10;
    [Description("bench ddp: one GPU's step time in ms for the 8-GPU scaling model (default: the step measured here)")] public double? StepMs { get; set; }
    [Description("bench ddp: all-reduce bus bandwidth in GB/s for the scaling model (default: fitted to the measured times)")] public double? Busbw { get; set; }

    // ── prediction and validation ─────────────────────────────────────────────────────────────
    [Description("confidence threshold (default 0.25 predict, 0.001 val)")] public double? Conf { get; set; }
    [Description("NMS IoU threshold")] public double Iou { get; set; } = 0.7;
    [Description("maximum detections per image")] public int MaxDet { get; set; } = 300;
    [Description("half precision")] public bool Half { get; set; }
    [Description("image, folder, glob, video, stream URL or .streams file")] public string? Source { get; set; }
    [Description("video frame stride")] public int VidStride { get; set; } = 1;
    [Description("streams: queue up to 30 frames and predict each (False: predict only the newest frame)")] public bool StreamBuffer { get; set; }
    [Description("class-agnostic NMS")] public bool AgnosticNms { get; set; }
    [Description("keep only these class indices, e.g. 0,2")] public string? Classes { get; set; }
    [Description("save YOLO-format labels")] public bool SaveTxt { get; set; }
    [Description("save confidences in the labels")] public bool SaveConf { get; set; }
    [Description("draw labels")] public bool ShowLabels { get; set; } = true;
    [Description("draw confidences")] public bool ShowConf { get; set; } = true;
    [Description("box line width in pixels (default: from the image size)")] public int? LineWidth { get; set; }

    // ── export ────────────────────────────────────────────────────────────────────────────────
    [Description("export format")] public string Format { get; set; } = "onnx";
    [Description("symbolic batch and image size in the export")] public bool Dynamic { get; set; }
    [Description("ONNX opset")] public int Opset { get; set; } = 17;

    // ── benchmarks ────────────────────────────────────────────────────────────────────────────
    [Description("bench predict: timed runs per backend (after 3 warm-up runs)")] public int Runs { get; set; } = 20;

    // ── hyperparameters ───────────────────────────────────────────────────────────────────────
    [Description("initial learning rate")] public double Lr0 { get; set; } = 0.01;
    [Description("final learning rate as a fraction of lr0")] public double Lrf { get; set; } = 0.01;
    [Description("SGD momentum / Adam beta1")] public double Momentum { get; set; } = 0.937;
    [Description("weight decay")] public double WeightDecay { get; set; } = 0.0005;
    [Description("warmup epochs")] public double WarmupEpochs { get; set; } = 3.0;
    [Description("warmup initial momentum")] public double WarmupMomentum { get; set; } = 0.8;
    [Description("warmup initial bias learning rate")] public double WarmupBiasLr { get; set; } = 0.1;
    [Description("box loss gain")] public double Box { get; set; } = 7.5;
    [Description("class loss gain")] public double Cls { get; set; } = 0.5;
    [Description("DFL loss gain")] public double Dfl { get; set; } = 1.5;
    [Description("nominal batch size")] public int Nbs { get; set; } = 64;
    [Description("HSV hue augmentation")] public double HsvH { get; set; } = 0.015;
    [Description("HSV saturation augmentation")] public double HsvS { get; set; } = 0.7;
    [Description("HSV value augmentation")] public double HsvV { get; set; } = 0.4;
    [Description("rotation (degrees)")] public double Degrees { get; set; }
    [Description("translation (fraction)")] public double Translate { get; set; } = 0.1;
    [Description("scale gain")] public double Scale { get; set; } = 0.5;
    [Description("shear (degrees)")] public double Shear { get; set; }
    [Description("perspective")] public double Perspective { get; set; }
    [Description("vertical flip probability")] public double Flipud { get; set; }
    [Description("horizontal flip probability")] public double Fliplr { get; set; } = 0.5;
    [Description("mosaic probability")] public double Mosaic { get; set; } = 1.0;
    [Description("mixup probability")] public double Mixup { get; set; }

    /// <summary>Keys the user gave explicitly (command line or args.yaml), as opposed to defaults.</summary>
    public ISet<string> GivenKeys { get; private set; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>True when <paramref name="key"/> was given explicitly.</summary>
    public bool IsGiven(string key) => GivenKeys.Contains(key);

    /// <summary>A copy (every argument is a value or a string; the given-key set is copied).</summary>
    public OspreyArgs Clone()
    {
        var copy = (OspreyArgs)MemberwiseClone();
        copy.GivenKeys = new HashSet<string>(GivenKeys, StringComparer.Ordinal);
        return copy;
    }

    /// <summary>A copy changed by <paramref name="change"/> (the given keys as they were): resolved values such as
    /// AutoBatch's batch, without changing the arguments as parsed.</summary>
    public OspreyArgs With(Action<OspreyArgs> change)
    {
        var copy = Clone();
        change(copy);
        return copy;
    }

    /// <summary><c>batch</c> as a whole number, for the modes without AutoBatch; a fraction is an error naming <paramref name="mode"/>.</summary>
    public int WholeBatch(string mode) => Batch == Math.Floor(Batch) && Math.Abs(Batch) <= int.MaxValue
        ? (int)Batch
        : throw new ArgumentsException($"batch={Batch.ToString(System.Globalization.CultureInfo.InvariantCulture)}: {mode} takes a whole number (a fraction asks train for AutoBatch)");
}

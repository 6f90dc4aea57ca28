using System.ComponentModel;
using Osprey.Data;
using Osprey.Runtime;

namespace Osprey.Config;

/// <summary>
/// Every argument an <c>osprey</c> command takes, with Ultralytics' names and defaults (its default.yaml), typed when the
/// arguments are parsed (<see cref="ArgsParser"/>, <see cref="ArgumentValues"/>) and never changed after: a resolved value
/// (AutoBatch's batch, the CPU defaults of <c>data=shapes</c>) is a copy made with <c>with</c>. The snake_case key of a
/// property is derived from its name (<c>WarmupBiasLr</c> → <c>warmup_bias_lr</c>); see <see cref="ArgsSchema"/>. The
/// resolved arguments are saved as args.yaml beside each run and inside its checkpoint.
/// </summary>
public sealed record OspreyArgs
{
    // ── what to run on ─────────────────────────────────────────────────────────────────────────
    [Description("model: a YAML (yolov8n … yolov8x, yolo11n … yolo11x and yolov10n … yolov10x .yaml are built in) or weights (.safetensors, .pt: also Ultralytics checkpoints)")]
    public string? Model { get; init; }
    [Description("dataset YAML, or 'shapes' for the built-in synthetic set")]
    public string? Data { get; init; }
    [Description("device: cpu, cuda, 0, or 0,1,2,3 (default: cuda:0 when available, else cpu)")]
    public DeviceRequest? Device { get; init; }
    [Description("override the number of classes of a model YAML")]
    public int? Nc { get; init; }

    // ── training ──────────────────────────────────────────────────────────────────────────────
    [Description("number of epochs")] public int Epochs { get; init; } = 100;
    [Description("maximum training time in hours (overrides epochs)")] public double? Time { get; init; }
    [Description("epochs without improvement before stopping early")] public int Patience { get; init; } = 100;
    [Description("global batch size; -1: AutoBatch at 60% of CUDA memory, 0<batch<1: at that fraction")] public double Batch { get; init; } = 16;
    [Description("image size")] public int Imgsz { get; init; } = 640;
    [Description("save checkpoints and results")] public bool Save { get; init; } = true;
    [Description("save a checkpoint every N epochs (-1: off)")] public int SavePeriod { get; init; } = -1;
    [Description("save a full-state checkpoint every N optimiser steps (-1: off)")] public int SavePeriodSteps { get; init; } = -1;
    [Description("also write weights/last.pt and best.pt: torch.load-able checkpoints (state dict, yaml, names, args; docs/interop.md); Osprey's, not Ultralytics'")]
    public bool SavePt { get; init; }
    [Description("cache decoded images: false, ram or disk")] public ImageCacheMode Cache { get; init; }
    [Description("data loader worker threads (per rank)")] public int Workers { get; init; } = 8;
    [Description("project folder (default runs/detect)")] public string? Project { get; init; }
    [Description("run name (default train, val, predict … with a number)")] public string? Name { get; init; }
    [Description("reuse an existing run folder")] public bool ExistOk { get; init; }
    [Description("True, False, or weights to start from (every tensor whose name and shape match, as Ultralytics' pretrained=path)")]
    public PretrainedWeights Pretrained { get; init; } = PretrainedWeights.Default;
    [Description("optimizer: SGD, AdamW or auto")] public OptimizerChoice Optimizer { get; init; }
    [Description("print more, and stack traces on errors")] public bool Verbose { get; init; }
    [Description("random seed")] public int Seed { get; init; }
    [Description("deterministic algorithms")] public bool Deterministic { get; init; } = true;
    [Description("treat the dataset as one class")] public bool SingleCls { get; init; }
    [Description("rectangular validation batches")] public bool Rect { get; init; }
    [Description("cosine learning-rate schedule")] public bool CosLr { get; init; }
    [Description("turn mosaic off for the last N epochs")] public int CloseMosaic { get; init; } = 10;
    [Description("augment on the training device (mosaic, affine, HSV, flips as tensor ops; the loader only decodes); Osprey's, not Ultralytics'")]
    public bool GpuAugment { get; init; }
    [Description("resume: true (last run) or a checkpoint path")] public ResumeSetting Resume { get; init; } = ResumeSetting.Off;
    [Description("mixed precision on CUDA")] public bool Amp { get; init; } = true;
    [Description("mixed-precision dtype: auto (bf16 where the GPU has it, else fp16), bf16 or fp16; given on the CPU it turns amp on there")]
    public AmpDtype AmpDtype { get; init; }
    [Description("fraction of the training set to use")] public double Fraction { get; init; } = 1.0;
    [Description("freeze the first N layers, or a list of layer indices")] public FreezeLayers? Freeze { get; init; }
    [Description("dropout (classification only)")] public double Dropout { get; init; }
    [Description("validate during training")] public bool Val { get; init; } = true;
    [Description("split to validate on: val, test or train")] public DatasetSplit Split { get; init; } = DatasetSplit.Val;
    [Description("write predictions.json (COCO format)")] public bool SaveJson { get; init; }
    [Description("plot results, curves and batches")] public bool Plots { get; init; } = true;

    // ── data parallel ─────────────────────────────────────────────────────────────────────────
    [Description("processes to start on this machine for CPU data parallelism")] public int Nproc { get; init; } = 1;
    [Description("synchronised BatchNorm across ranks")] public bool SyncBn { get; init; }
    [Description("relaunch all ranks from the newest checkpoint up to N times")] public int MaxRestarts { get; init; }
    [Description("elastic: fewest ranks to continue on when a rank is lost for good (torchrun's MIN of --nnodes=MIN:MAX); 0: the world size (no shrinking)")]
    public int MinRanks { get; init; }

    // ── tuning (osprey tune) ──────────────────────────────────────────────────────────────────
    [Description("tune: trials to run (Ultralytics' model.tune iterations)")] public int Iterations { get; init; } = 10;
    [Description("tune: genetic (Ultralytics' model.tune: each trial bred from the best so far) or asha (random trials stopped early at rungs, Ray Tune's ASHA as Ultralytics' use_ray=True)")]
    public SearchMethod Search { get; init; }
    [Description("tune: a YAML search space (key: [min, max] or [min, max, gain]) instead of the default one")] public string? Space { get; init; }
    [Description("tune: trials running at once (default: 1 on the CPU, one per GPU of device=, SLURM_NTASKS under Slurm, the hostfile's slots)")]
    public int? TrialsAtOnce { get; init; }
    [Description("tune, asha: epochs before a trial can first be stopped (Ultralytics' grace_period; at most epochs)")] public int GracePeriod { get; init; } = 10;
    [Description("tune: OpenMPI hostfile (host slots=N per line): each trial runs under mpirun -np 1 -H host")] public string? Hostfile { get; init; }

    // ── benchmarks (osprey bench ddp) ─────────────────────────────────────────────────────────
    [Description("bench ddp: timed training steps per world size (after 2 warm-up steps)")] public int Steps { get; init; } = 10;
    [Description("bench ddp: one GPU's step time in ms for the 8-GPU scaling model (default: the step measured here)")] public double? StepMs { get; init; }
    [Description("bench ddp: all-reduce bus bandwidth in GB/s for the scaling model (default: fitted to the measured times)")] public double? Busbw { get; init; }

    // ── prediction and validation ─────────────────────────────────────────────────────────────
    [Description("confidence threshold (default 0.25 predict, 0.001 val)")] public double? Conf { get; init; }
    [Description("NMS IoU threshold")] public double Iou { get; init; } = 0.7;
    [Description("maximum detections per image")] public int MaxDet { get; init; } = 300;
    [Description("half precision")] public bool Half { get; init; }
    [Description("image, folder, glob, video, stream URL or .streams file")] public string? Source { get; init; }
    [Description("video frame stride")] public int VidStride { get; init; } = 1;
    [Description("streams: queue up to 30 frames and predict each (False: predict only the newest frame)")] public bool StreamBuffer { get; init; }
    [Description("class-agnostic NMS")] public bool AgnosticNms { get; init; }
    [Description("keep only these class indices, e.g. 0,2")] public ClassFilter? Classes { get; init; }
    [Description("save YOLO-format labels")] public bool SaveTxt { get; init; }
    [Description("save confidences in the labels")] public bool SaveConf { get; init; }
    [Description("draw labels")] public bool ShowLabels { get; init; } = true;
    [Description("draw confidences")] public bool ShowConf { get; init; } = true;
    [Description("box line width in pixels (default: from the image size)")] public int? LineWidth { get; init; }

    [Description("inference backend: auto (a .onnx file in ONNX Runtime, anything else in TorchSharp), torch or onnxruntime")]
    public string Backend { get; init; } = "auto";

    // ── serving (osprey serve) ────────────────────────────────────────────────────────────────
    [Description("serve: port to listen on")] public int Port { get; init; } = 8080;
    [Description("serve: address to listen on (0.0.0.0 for every interface)")] public string Host { get; init; } = "127.0.0.1";
    [Description("serve: largest batch the dynamic batcher forms")] public int MaxBatch { get; init; } = 16;
    [Description("serve: longest wait in ms for more work once a batch has its first item (Triton's max_queue_delay)")]
    public double MaxDelayMs { get; init; } = 5;
    [Description("serve: requests waiting before new ones get 503")] public int MaxQueue { get; init; } = 64;
    [Description("serve: swap to new weights when the model file changes")] public bool Watch { get; init; }

    // ── export ────────────────────────────────────────────────────────────────────────────────
    [Description("export format")] public ExportFormat Format { get; init; }
    [Description("symbolic batch and image size in the export")] public bool Dynamic { get; init; }
    [Description("ONNX opset")] public int Opset { get; init; } = 17;

    // ── benchmarks ────────────────────────────────────────────────────────────────────────────
    [Description("bench predict: timed runs per backend (after 3 warm-up runs)")] public int Runs { get; init; } = 20;
    [Description("bench serve: synthetic MJPEG streams (30 fps each, from 127.0.0.1)")] public int Streams { get; init; } = 16;
    [Description("bench serve: clients sending POST /v1/detect one request after another, beside the streams")] public int Clients { get; init; } = 2;
    [Description("bench serve: seconds measured (after 5 s of warm-up)")] public double Duration { get; init; } = 30;

    // ── hyperparameters ───────────────────────────────────────────────────────────────────────
    [Description("initial learning rate")] public double Lr0 { get; init; } = 0.01;
    [Description("final learning rate as a fraction of lr0")] public double Lrf { get; init; } = 0.01;
    [Description("SGD momentum / Adam beta1")] public double Momentum { get; init; } = 0.937;
    [Description("weight decay")] public double WeightDecay { get; init; } = 0.0005;
    [Description("warmup epochs")] public double WarmupEpochs { get; init; } = 3.0;
    [Description("warmup initial momentum")] public double WarmupMomentum { get; init; } = 0.8;
    [Description("warmup initial bias learning rate")] public double WarmupBiasLr { get; init; } = 0.1;
    [Description("box loss gain")] public double Box { get; init; } = 7.5;
    [Description("class loss gain")] public double Cls { get; init; } = 0.5;
    [Description("DFL loss gain")] public double Dfl { get; init; } = 1.5;
    [Description("knowledge distillation: the teacher (any model= format: weights, .pt, .onnx; same family and class names as the student)")]
    public string? DistillModel { get; init; }
    [Description("distillation loss gain (with distill_model)")] public double Dis { get; init; } = 6.0;
    [Description("nominal batch size")] public int Nbs { get; init; } = 64;
    [Description("HSV hue augmentation")] public double HsvH { get; init; } = 0.015;
    [Description("HSV saturation augmentation")] public double HsvS { get; init; } = 0.7;
    [Description("HSV value augmentation")] public double HsvV { get; init; } = 0.4;
    [Description("rotation (degrees)")] public double Degrees { get; init; }
    [Description("translation (fraction)")] public double Translate { get; init; } = 0.1;
    [Description("scale gain")] public double Scale { get; init; } = 0.5;
    [Description("shear (degrees)")] public double Shear { get; init; }
    [Description("perspective")] public double Perspective { get; init; }
    [Description("vertical flip probability")] public double Flipud { get; init; }
    [Description("horizontal flip probability")] public double Fliplr { get; init; } = 0.5;
    [Description("mosaic probability")] public double Mosaic { get; init; } = 1.0;
    [Description("mixup probability")] public double Mixup { get; init; }

    /// <summary>Keys the user gave explicitly (command line or args.yaml), as opposed to defaults.</summary>
    public IReadOnlySet<string> GivenKeys { get; internal init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary><c>device</c>, or Ultralytics' default when none was given: CUDA 0 when available, else the CPU.</summary>
    public DeviceRequest DeviceOrDefault() => Device ?? DeviceRequest.Parse(null);

    /// <summary>True when <paramref name="key"/> was given explicitly.</summary>
    public bool IsGiven(string key) => GivenKeys.Contains(key);

    /// <summary><c>batch</c> as a whole number, for the modes without AutoBatch; a fraction is an error naming <paramref name="mode"/>.</summary>
    public int WholeBatch(string mode) => Batch == Math.Floor(Batch) && Math.Abs(Batch) <= int.MaxValue
        ? (int)Batch
        : throw new ArgumentsException($"batch={Batch.ToString(System.Globalization.CultureInfo.InvariantCulture)}: {mode} takes a whole number (a fraction asks train for AutoBatch)");
}

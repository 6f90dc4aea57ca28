using System.Globalization;
using Osprey.Benchmarks;
using Osprey.Config;
using Osprey.Data;
using Osprey.Models.Building;
using Osprey.Runtime;
using Osprey.Training;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary>
/// <c>osprey bench train model=yolov8n.yaml data=coco128.yaml imgsz=640 batch=64 device=0 [amp=True] [amp_dtype=…] [epochs=15]</c>:
/// end-to-end training images/s (real loader on the dataset's JPEGs, repeated; mosaic; the full loss; optimiser; EMA) and, in the
/// same call, <c>bench/train_reference.py</c> (the same YOLOv8 in plain PyTorch, same batch, precision and memory layout,
/// synthetic input, model step only) when <c>python3</c> has torch; prints the ratio. <c>epochs</c> = passes over the train split
/// that are timed. Registered as <c>bench-train</c>; <c>osprey bench train</c> is folded into that name.
/// </summary>
public sealed class BenchTrainCommand : ICliCommand
{
    public string Name => "bench-train";
    public string Description => "training throughput end to end vs a PyTorch model step (osprey bench train model=… data=… imgsz batch device [amp] [epochs=15])";

    public OspreyArgs Defaults() => new() { Epochs = 15 };

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        if (args.Data is null) throw new ArgumentsException("bench train needs data=… (e.g. data=../shared/data/coco128/coco128.yaml)");
        if (args.Epochs < 1) throw new ArgumentsException("bench train needs epochs ≥ 1 (passes over the train split to time)");
        var config = DatasetCatalog.Resolve(args.Data);
        int trainImages = DetectionDataset.Load(config, DatasetSplit.Train).Count;
        var progress = new BenchProgress(output);
        var osprey = TrainBenchmark.Run(args, args.Epochs * trainImages, progress);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"osprey    {osprey.ImagesPerSecond,9:0.0} img/s  ({osprey.Images} images in {osprey.Batches} batches, {osprey.Seconds:0.00} s; {osprey.Precision}; {osprey.Device}; {osprey.Parameters:N0} parameters; {Environment.ProcessorCount} cores)"));

        var device = args.DeviceOrDefault().Resolve();
        bool cuda = device.type == TorchSharp.DeviceType.CUDA;
        var precision = MixedPrecision.Resolve(args, device);
        string model = args.Model ?? TrainingSetup.DefaultModel;
        string? scale = model.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) ? ModelConfig.Load(model, config.ClassCount).Scale : null;
        TrainReferenceResult reference = scale is "n" or "s" or "m" or "l" or "x"
            ? TrainBenchmark.RunReference(BenchReference.Script("train_reference.py", "OSPREY_TRAIN_REFERENCE"), Environment.GetEnvironmentVariable("OSPREY_PYTHON") ?? "python3", scale,
                config.ClassCount, args.Imgsz, args.WholeBatch("bench train"), precision, cuda, args.Deterministic, steps: osprey.Batches)
            : new(0, 0, "", $"model={args.Model} is not a yolov8n/s/m/l/x YAML (the reference builds those only)");
        if (reference.Error is not null)
        {
            output.MarkupLine($"[yellow]reference not run:[/] {Markup.Escape(reference.Error)}");
            return 0;
        }
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"reference {reference.ImagesPerSecond,9:0.0} img/s  (model step only, synthetic input; {reference.Description}; {reference.Parameters:N0} parameters)"));
        if (reference.Parameters != osprey.Parameters)
            output.MarkupLine("[yellow]warning:[/] the reference's parameter count differs from Osprey's: not the same architecture");
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ratio osprey end-to-end / reference model step: {osprey.ImagesPerSecond / reference.ImagesPerSecond:0.00}×"));
        return 0;
    }
}

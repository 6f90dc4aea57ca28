using Osprey.Config;
using Osprey.Data;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Plotting;
using Osprey.Runtime;
using TorchSharp;

namespace Osprey.Evaluation;

/// <summary>What <c>osprey val</c> produced: the result, the run folder, the class names and the backend that ran the model.</summary>
public sealed record ValidationReport(ValidationResult Result, string RunDirectory, IReadOnlyList<string> Names,
    DatasetSummary Dataset, string? PredictionsJson, string Backend);

/// <summary>
/// <c>osprey val model=… data=… [save_json=True]</c>: validates weights on a dataset split with Ultralytics' validation
/// settings (conf 0.001 unless given, IoU 0.7, max_det 300) and writes runs/detect/valN (plots, predictions.json).
/// </summary>
public static class ValidationRun
{
    /// <summary>Runs validation as the arguments say.</summary>
    public static ValidationReport Run(OspreyArgs args, Action<ValidationProgress>? progress = null)
    {
        string data = args.Data ?? throw new ArgumentsException("val needs data=… (a dataset YAML, or data=shapes)");
        string model = args.Model ?? throw new ArgumentsException("val needs model=… (weights, e.g. runs/detect/train/weights/best.safetensors)");
        if (args.Imgsz < 32 || args.Imgsz % 32 != 0)
            throw new ArgumentsException($"imgsz={args.Imgsz}: must be a positive multiple of 32 (the largest stride)");
        var device = args.DeviceOrDefault().Resolve();
        var split = args.Split;
        DatasetConfig config = DatasetCatalog.Resolve(data);
        var dataset = DetectionDataset.Load(config, split);
        bool onnxRuntime = Detectors.UsesOnnxRuntime(model, args.Backend, device);
        using var onnx = onnxRuntime ? new OnnxDetector(model, new PredictOptions { ImageSize = args.Imgsz }) : null;   // a fixed graph keeps its size
        using var detector = onnxRuntime ? null : ModelFactory.Create(model);
        int nc = onnx?.Names.Count ?? detector!.Nc;
        if (nc != config.ClassCount)
            throw new InvalidDataException(
                $"{model} predicts {nc} classes but {config.YamlPath} has {config.ClassCount}: validate on a dataset with the model's classes");
        if (onnx is not null && onnx.Options.ImageSize != args.Imgsz)
            throw new ArgumentsException($"imgsz={args.Imgsz}: {model} takes {onnx.Options.ImageSize}×{onnx.Options.ImageSize} inputs (export it with dynamic=True for other sizes)");
        detector?.to(device);
        string runDirectory = Training.RunDirectory.Create(args.Project, args.Name, "val", args.ExistOk);
        using var loader = DataLoader.ForValidation(dataset, new LoaderOptions(
            ImageSize: args.Imgsz, BatchSize: Math.Max(args.WholeBatch("val"), 1), Workers: Math.Clamp(args.Workers, 1, Environment.ProcessorCount),
            Seed: args.Seed, Cache: args.Cache));
        var nms = new NmsOptions
        {
            ConfidenceThreshold = (float)(args.Conf ?? NmsOptions.ValidationConfidence),
            IouThreshold = (float)args.Iou, MaxDetections = args.MaxDet, Agnostic = args.AgnosticNms,
        };
        int plotted = 0;
        void Inspect(Batch batch, IReadOnlyList<TorchSharp.torch.Tensor> kept)
        {
            if (!args.Plots || plotted >= 3) return;
            RunPlots.Batch(batch, config.Names, Path.Combine(runDirectory, $"val_batch{plotted}_labels.png"));
            RunPlots.Batch(batch, config.Names, Path.Combine(runDirectory, $"val_batch{plotted}_pred.png"), kept);
            plotted++;
        }
        var result = onnx is not null
            ? DetectionValidator.Run(onnx, loader, nms, args.SaveJson, progress, Inspect)
            : DetectionValidator.Run(detector!, loader, device, nms, collectPredictions: args.SaveJson, progress: progress, inspectBatch: Inspect);
        string? json = null;
        if (args.SaveJson)
        {
            json = Path.Combine(runDirectory, "predictions.json");
            CocoPrediction.WriteJson(json, result.Predictions);
        }
        if (args.Plots)
        {
            RunPlots.PrecisionRecallCurve(result.Evaluator, config.Names, Path.Combine(runDirectory, "PR_curve.png"));
            RunPlots.ConfusionMatrix(result.Confusion, config.Names, Path.Combine(runDirectory, "confusion_matrix.png"), normalize: false);
            RunPlots.ConfusionMatrix(result.Confusion, config.Names, Path.Combine(runDirectory, "confusion_matrix_normalized.png"));
        }
        return new ValidationReport(result, runDirectory, config.Names, dataset.Summary, json, onnx?.Backend ?? "torch");
    }
}

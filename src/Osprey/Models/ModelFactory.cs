using Osprey.Interop;
using Osprey.Models.Building;
using Osprey.Onnx;

namespace Osprey.Models;

/// <summary>
/// Creates a <see cref="DetectionModel"/> from a model YAML or a weights file.
/// <list type="bullet">
/// <item><c>.yaml</c>/<c>.yml</c>: a path on disk, or a name like <c>yolov8n.yaml</c>, <c>yolo11s.yaml</c> or
/// <c>yolov10m.yaml</c> resolved against the embedded
/// configs; fresh weights.</item>
/// <item><c>.safetensors</c>/<c>.pt</c>/<c>.pth</c>: the architecture comes from <paramref name="yaml"/> if given, else
/// the sidecar next to the weights (<c>best.safetensors</c> → <c>best.yaml</c>, written by
/// <see cref="ModelWeights.Save"/>), else the weights' file name as a config name (<c>yolov8n.pt</c> →
/// <c>yolov8n.yaml</c>). Weights load strictly; when <c>nc</c> differs from the config's, the model is built with
/// the new nc and every tensor whose key and shape still match is transferred.</item>
/// <item><c>.pt</c>/<c>.pth</c> that is an Ultralytics checkpoint (a pickled model with its <c>yaml</c>, or Osprey's
/// <c>save_pt</c> file): see <see cref="UltralyticsCheckpoint"/>; the architecture and names come from the file.</item>
/// <item><c>.onnx</c>: an Ultralytics YOLOv8 or YOLO11 ONNX export (fp32, fp16 or int8-quantised); see <see cref="OnnxImport"/>.</item>
/// </list>
/// </summary>
public static class ModelFactory
{
    /// <param name="model">YAML name/path or weights path.</param>
    /// <param name="nc">Class-count override.</param>
    /// <param name="yaml">Architecture for a weights file (overrides sidecar and file-name lookup).</param>
    public static DetectionModel Create(string model, int? nc = null, string? yaml = null)
    {
        string extension = Path.GetExtension(model).ToLowerInvariant();
        if (extension is ".yaml" or ".yml") return DetectionModel.FromYaml(model, nc);
        if (extension is ".onnx")
        {
            var imported = OnnxImport.Load(model);
            if (nc is null || nc == imported.Nc) return imported;
            // Another class count (e.g. fine-tuning COCO weights on a new dataset): transfer every tensor whose key
            // and shape still match, as for weights files (Ultralytics' intersect_dicts).
            var transferredOnnx = new DetectionModel(ModelConfig.Parse(imported.Config.Text, imported.Config.Source, imported.Config.Scale, nc));
            using (var scope = TorchSharp.torch.NewDisposeScope())
            using (TorchSharp.torch.no_grad())
            {
                var source = imported.state_dict();
                foreach (var (key, tensor) in transferredOnnx.state_dict())
                    if (source.TryGetValue(key, out var value) && value.shape.SequenceEqual(tensor.shape)) tensor.copy_(value);
            }
            imported.Dispose();
            return transferredOnnx;
        }
        if (extension is not (".safetensors" or ".pt" or ".pth"))
            throw new ArgumentException($"'{model}': expected a model YAML (.yaml/.yml), weights (.safetensors/.pt/.pth) or an ONNX export (.onnx).", nameof(model));
        if (!File.Exists(model)) throw new FileNotFoundException($"Weights file '{model}' not found.", model);
        if (extension is ".pt" or ".pth" && FromCheckpoint(model, nc) is { } fromCheckpoint) return fromCheckpoint.Model;

        string configName = yaml ?? (File.Exists(ModelWeights.SidecarPath(model))
            ? ModelWeights.SidecarPath(model)
            : Path.GetFileNameWithoutExtension(model) + ".yaml");
        ModelConfig config;
        try
        {
            config = ModelConfig.Load(configName);
        }
        catch (FileNotFoundException e)
        {
            throw new FileNotFoundException(
                $"No architecture for '{model}': pass a yaml, or put '{ModelWeights.SidecarPath(model)}' next to it. ({e.Message})",
                configName, e);
        }

        if (nc is null || nc == config.Nc)
        {
            var exact = new DetectionModel(config);
            ModelWeights.Load(exact, model);
            if (extension is ".safetensors") exact.Trained = TrainedOn.FromMetadata(TrainedOn.ReadMetadata(model));
            return exact;
        }
        var transferred = new DetectionModel(ModelConfig.Parse(config.Text, config.Source, config.Scale, nc));
        ModelWeights.LoadMatching(transferred, model);
        return transferred;
    }

    /// <summary>
    /// The model of an Ultralytics checkpoint (<see cref="UltralyticsCheckpoint"/>) and how many tensors were transferred
    /// (all of them at the checkpoint's nc; those whose key and shape match at another), or null when
    /// <paramref name="path"/> is a plain state dict.
    /// </summary>
    public static (DetectionModel Model, int Transferred)? FromCheckpoint(string path, int? nc = null)
    {
        using var checkpoint = UltralyticsCheckpoint.TryRead(path);
        return checkpoint?.CreateModel(nc);
    }
}

using OpenCvSharp;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Onnx;
using TorchSharp;

namespace Osprey.Serving;

/// <summary>
/// How a server runs the models it loads: the faster backend for its device unless told. <c>backend=auto</c> on the CPU
/// with a weights file or a YAML exports the model to ONNX (symbolic batch and size, so the batcher's batches run as one
/// call) in a temporary folder the server owns and serves the export in ONNX Runtime — on a 2-core AVX2 CPU about twice
/// as fast as TorchSharp for YOLOv8n (docs/serve.md has the measurement); on CUDA it runs in TorchSharp; a <c>.onnx</c>
/// file runs as <see cref="Detectors.Open"/> runs it. <c>backend=torch</c> and <c>backend=onnxruntime</c> force one. Hot
/// swaps load by the same rule. Each export is deleted when its model is let go, the folder when the server stops.
/// </summary>
public sealed class ServeBackend : IDisposable
{
    readonly string backend;
    readonly PredictOptions options;
    readonly torch.Device? device;
    readonly object gate = new();
    string? folder;
    int exports;
    bool disposed;

    /// <param name="backend">auto, torch or onnxruntime.</param>
    /// <param name="options">Input size and thresholds of every model.</param>
    /// <param name="device">Where the models run; null = CPU.</param>
    public ServeBackend(string backend, PredictOptions options, torch.Device? device)
    {
        this.backend = backend;
        this.options = options;
        this.device = device;
    }

    /// <summary>The folder of the exports (created with the first); null before.</summary>
    public string? Folder
    {
        get { lock (gate) return folder; }
    }

    /// <summary>True when <paramref name="path"/> is exported to ONNX and served in ONNX Runtime (auto, the CPU, not a .onnx file).</summary>
    public static bool ExportsToOnnx(string path, string backend, torch.Device? device) =>
        backend == "auto" && (device is null || device.type == DeviceType.CPU) && !path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase);

    /// <summary>Opens <paramref name="path"/> on the backend the rule picks (a <see cref="DetectorFactory"/>).</summary>
    /// <exception cref="InvalidDataException">The model loaded but cannot be exported to ONNX (the message says to serve it with backend=torch).</exception>
    public IDetector Open(string path)
    {
        if (!ExportsToOnnx(path, backend, device)) return Detectors.Open(path, backend, options, device);
        string onnx;
        using (var model = ModelFactory.Create(path))   // a missing or corrupt file fails here, as Detectors.Open would
        {
            onnx = NewExportPath(path);
            try
            {
                OnnxExporter.Export(model, onnx, new OnnxExportOptions { Height = options.ImageSize, Width = options.ImageSize, Dynamic = true });
            }
            catch (Exception e) when (e is NotSupportedException or ArgumentException or InvalidOperationException)
            {
                throw new InvalidDataException($"'{path}' loaded but could not be exported to ONNX for ONNX Runtime ({e.Message}): " +
                    "serve it with backend=torch.", e);
            }
        }
        try
        {
            return new ExportedDetector(new OnnxDetector(onnx, options), onnx);
        }
        catch
        {
            File.Delete(onnx);
            throw;
        }
    }

    string NewExportPath(string path)
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (folder is null)
            {
                folder = Path.Combine(Path.GetTempPath(), $"osprey-serve-{Environment.ProcessId}-{Guid.NewGuid():N}");
                Directory.CreateDirectory(folder);
            }
            return Path.Combine(folder, $"{++exports}-{Path.GetFileNameWithoutExtension(path)}.onnx");
        }
    }

    /// <summary>Deletes the exports' folder (ONNX Runtime holds the graphs in memory: models still serving keep working).</summary>
    public void Dispose()
    {
        string? delete;
        lock (gate)
        {
            disposed = true;
            delete = folder;
        }
        try
        {
            if (delete is not null && Directory.Exists(delete)) Directory.Delete(delete, recursive: true);
        }
        catch (IOException)
        {
            // left to the system's temp cleaning
        }
    }
}

/// <summary>A model the server exported to ONNX and serves in ONNX Runtime; the export is deleted with it.</summary>
public sealed class ExportedDetector : IDetector
{
    readonly OnnxDetector inner;

    internal ExportedDetector(OnnxDetector inner, string onnxPath)
    {
        this.inner = inner;
        OnnxPath = onnxPath;
    }

    /// <summary>The export it runs.</summary>
    public string OnnxPath { get; }

    /// <inheritdoc/>
    public string Backend => inner.Backend;

    /// <inheritdoc/>
    public IReadOnlyList<string> Names => inner.Names;

    /// <inheritdoc/>
    public PredictOptions Options => inner.Options;

    /// <inheritdoc/>
    public IReadOnlyList<Prediction> Predict(IReadOnlyList<Mat> bgrImages, IReadOnlyList<string>? sources = null) => inner.Predict(bgrImages, sources);

    /// <summary>Releases the session and deletes the export.</summary>
    public void Dispose()
    {
        inner.Dispose();
        try
        {
            File.Delete(OnnxPath);
        }
        catch (IOException)
        {
            // the folder goes with the server
        }
    }
}

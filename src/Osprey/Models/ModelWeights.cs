using System.Text;
using System.Text.Json;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models;

/// <summary>
/// Weights IO with Ultralytics state-dict keys: safetensors (<c>.safetensors</c>) and PyTorch pickles (<c>.pt</c>/<c>.pth</c>:
/// a <c>torch.save(model.state_dict())</c>, or the weights of an Ultralytics checkpoint, read by
/// <see cref="Osprey.Interop.UltralyticsCheckpoint"/>; saving writes a plain state dict). Loading is strict by default: any missing or unexpected key or
/// shape mismatch throws an <see cref="InvalidDataException"/> that names the file and lists the problems.
/// </summary>
public static class ModelWeights
{
    private const int ListedProblems = 20;

    /// <summary>
    /// Saves the state dict by extension (<c>.safetensors</c>, <c>.pt</c>, <c>.pth</c>). For a
    /// <see cref="DetectionModel"/> a sidecar YAML (same path, <c>.yaml</c> extension) pins nc and scale so
    /// <see cref="ModelFactory.Create"/> can rebuild the exact model. Save before <see cref="DetectionModel.Fuse"/>.
    /// </summary>
    public static void Save(Module model, string path, bool writeSidecar = true)
    {
        // Atomic (temp + flush + rename): a crash mid-save leaves the previous weights intact.
        WeightsFormat format = Format(path);
        Osprey.IO.AtomicFile.WriteVia(path, temporary =>
        {
            // From CPU copies (on the CPU the tensors themselves): the writers read each tensor's bytes, which libtorch
            // only has on the host.
            using var scope = NewDisposeScope();
            var state = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu().contiguous());
            if (format == WeightsFormat.Safetensors && model is DetectionModel { Trained: { } trained })
            {
                using var buffer = new MemoryStream();                 // the header gets what the model was trained on
                Safetensors.SaveStateDict(buffer, state, leaveOpen: true);
                File.WriteAllBytes(temporary, TrainedOn.WithMetadata(buffer.ToArray(), trained.ToMetadata()));
                return;
            }
            using var stream = File.Create(temporary);
            if (format == WeightsFormat.Safetensors) Safetensors.SaveStateDict(stream, state, leaveOpen: true);
            else PyTorchPickler.PickleStateDict(stream, state, leaveOpen: true);
        });
        if (writeSidecar && model is DetectionModel detection)
            Osprey.IO.AtomicFile.WriteAllText(SidecarPath(path), detection.Config.ToPinnedYaml());
    }

    /// <summary>The sidecar YAML path for a weights file: same folder and stem, <c>.yaml</c>.</summary>
    public static string SidecarPath(string weightsPath) => Path.ChangeExtension(weightsPath, ".yaml");

    /// <summary>Loads every tensor strictly (keys and shapes must match exactly).</summary>
    /// <exception cref="InvalidDataException">Missing/unexpected keys or shape mismatches (all listed, file named).</exception>
    public static void Load(Module model, string path)
    {
        using var scope = NewDisposeScope();
        CheckExact(model, ReadShapes(path), path);
        LoadTensors(model, path, model.state_dict().Keys.ToList());
    }

    /// <summary>As <see cref="Load(Module, string)"/> from tensors already read (<paramref name="source"/> names them); returns the count.</summary>
    public static int Load(Module model, IReadOnlyDictionary<string, Tensor> state, string source)
    {
        using var scope = NewDisposeScope();
        CheckExact(model, state.ToDictionary(kv => kv.Key, kv => kv.Value.shape), source);
        return Copy(model, state, model.state_dict().Keys.ToList());
    }

    private static void CheckExact(Module model, IReadOnlyDictionary<string, long[]> fileShapes, string path)
    {
        var modelState = model.state_dict();
        var missing = modelState.Keys.Where(k => !fileShapes.ContainsKey(k)).ToList();
        var unexpected = fileShapes.Keys.Where(k => !modelState.ContainsKey(k)).OrderBy(k => k, KeyOrder.Instance).ToList();
        var mismatched = modelState.Where(kv => fileShapes.TryGetValue(kv.Key, out var shape) && !shape.SequenceEqual(kv.Value.shape))
            .Select(kv => $"{kv.Key}: file {Shape(fileShapes[kv.Key])} vs model {Shape(kv.Value.shape)}").ToList();
        if (missing.Count + unexpected.Count + mismatched.Count == 0) return;
        var message = new StringBuilder($"{path}: weights do not match the model.");
        Append(message, "missing keys", missing);
        Append(message, "unexpected keys", unexpected);
        Append(message, "shape mismatches", mismatched);
        throw new InvalidDataException(message.ToString());
    }

    /// <summary>
    /// Transfer loading: copies only tensors whose key and shape match (Ultralytics' intersect_dicts), e.g. a
    /// pretrained 80-class checkpoint into a model with another nc. Returns how many tensors were copied.
    /// </summary>
    public static int LoadMatching(Module model, string path)
    {
        using var scope = NewDisposeScope();
        var keys = MatchingKeys(model, ReadShapes(path));
        LoadTensors(model, path, keys);
        return keys.Count;
    }

    /// <summary>As <see cref="LoadMatching(Module, string)"/> from tensors already read.</summary>
    public static int LoadMatching(Module model, IReadOnlyDictionary<string, Tensor> state)
    {
        using var scope = NewDisposeScope();
        return Copy(model, state, MatchingKeys(model, state.ToDictionary(kv => kv.Key, kv => kv.Value.shape)));
    }

    private static List<string> MatchingKeys(Module model, IReadOnlyDictionary<string, long[]> fileShapes) =>
        model.state_dict().Where(kv => fileShapes.TryGetValue(kv.Key, out var shape) && shape.SequenceEqual(kv.Value.shape))
            .Select(kv => kv.Key).ToList();

    /// <summary>Key → shape of every tensor in a weights file (safetensors header, or the unpickled state dict).</summary>
    public static IReadOnlyDictionary<string, long[]> ReadShapes(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Weights file '{path}' not found.", path);
        return Format(path) == WeightsFormat.Safetensors
            ? ReadSafetensorsHeader(path)
            : ReadPickle(path).ToDictionary(kv => kv.Key, kv => kv.Value.shape);
    }

    private static void LoadTensors(Module model, string path, IReadOnlyCollection<string> keys)
    {
        using var scope = NewDisposeScope();
        Copy(model, Format(path) == WeightsFormat.Safetensors ? ReadSafetensors(path, keys) : ReadPickle(path), keys);
    }

    private static int Copy(Module model, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyCollection<string> keys)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var modelState = model.state_dict();
        foreach (var key in keys)
        {
            var target = modelState[key];
            target.copy_(tensors[key].to(target.dtype, target.device));
        }
        return keys.Count;
    }

    // A torch.save state dict, or an Ultralytics checkpoint's weights, through Osprey's restricted unpickler.
    private static Dictionary<string, Tensor> ReadPickle(string path)
    {
        using var file = Osprey.Interop.UltralyticsCheckpoint.Read(path);
        return file.State.ToDictionary(kv => kv.Key, kv => kv.Value.alias());
    }

    private static Dictionary<string, long[]> ReadSafetensorsHeader(string path)
    {
        using var stream = File.OpenRead(path);
        var (header, _) = ReadHeader(stream, path);
        return header.ToDictionary(kv => kv.Key, kv => kv.Value.Shape);
    }

    private static Dictionary<string, Tensor> ReadSafetensors(string path, IReadOnlyCollection<string> keys)
    {
        using var stream = File.OpenRead(path);
        var (header, dataStart) = ReadHeader(stream, path);
        var result = new Dictionary<string, Tensor>();
        foreach (var key in keys)
        {
            var entry = header[key];
            long length = entry.End - entry.Begin;
            var bytes = new byte[length];
            stream.Position = dataStart + entry.Begin;
            stream.ReadExactly(bytes);
            var tensor = empty(entry.Shape, dtype: entry.DType);
            tensor.bytes = bytes;
            result[key] = tensor;
        }
        return result;
    }

    private sealed record SafetensorsEntry(ScalarType DType, long[] Shape, long Begin, long End);

    private static (Dictionary<string, SafetensorsEntry> Header, long DataStart) ReadHeader(Stream stream, string path)
    {
        try
        {
            Span<byte> lengthBytes = stackalloc byte[8];
            stream.ReadExactly(lengthBytes);
            long length = BitConverter.ToInt64(lengthBytes);
            if (length <= 0 || length > 100_000_000 || length > stream.Length - 8)
                throw new InvalidDataException($"{path}: not a safetensors file (header length {length}).");
            var json = new byte[length];
            stream.ReadExactly(json);
            using var document = JsonDocument.Parse(json);
            var header = new Dictionary<string, SafetensorsEntry>();
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__") continue;
                var offsets = property.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                header[property.Name] = new SafetensorsEntry(
                    DType(property.Value.GetProperty("dtype").GetString(), path),
                    property.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray(),
                    offsets[0], offsets[1]);
            }
            return (header, 8 + length);
        }
        catch (Exception e) when (e is JsonException or EndOfStreamException or KeyNotFoundException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: malformed safetensors header ({e.Message}).", e);
        }
    }

    private static ScalarType DType(string? name, string path) => name switch
    {
        "F64" => ScalarType.Float64,
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new InvalidDataException($"{path}: unsupported safetensors dtype '{name}'."),
    };

    private enum WeightsFormat { Safetensors, Pickle }

    private static WeightsFormat Format(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".safetensors" => WeightsFormat.Safetensors,
        ".pt" or ".pth" => WeightsFormat.Pickle,
        var other => throw new ArgumentException($"Unsupported weights format '{other}' for '{path}' (use .safetensors, .pt or .pth).", nameof(path)),
    };

    /// <summary>Orders state-dict keys like module order: dotted segments, numeric ones compared as numbers.</summary>
    private sealed class KeyOrder : IComparer<string>
    {
        public static readonly KeyOrder Instance = new();

        public int Compare(string? x, string? y)
        {
            var a = (x ?? "").Split('.');
            var b = (y ?? "").Split('.');
            for (int i = 0; i < Math.Min(a.Length, b.Length); i++)
            {
                int order = long.TryParse(a[i], out long na) && long.TryParse(b[i], out long nb)
                    ? na.CompareTo(nb)
                    : string.CompareOrdinal(a[i], b[i]);
                if (order != 0) return order;
            }
            return a.Length.CompareTo(b.Length);
        }
    }

    private static string Shape(long[] shape) => $"[{string.Join(", ", shape)}]";

    private static void Append(StringBuilder message, string title, List<string> items)
    {
        if (items.Count == 0) return;
        message.Append($" {items.Count} {title}: {string.Join(", ", items.Take(ListedProblems))}");
        if (items.Count > ListedProblems) message.Append($", … ({items.Count - ListedProblems} more)");
        message.Append('.');
    }
}

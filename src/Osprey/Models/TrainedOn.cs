using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Onnx;

namespace Osprey.Models;

/// <summary>
/// What a model was trained on: the <c>data=</c> argument of its training (Ultralytics' <c>model.args["data"]</c>, which its
/// exporter writes into the description: "… model trained on coco8.yaml") and the dataset's class names
/// (<c>model.names</c>). Weights files carry it in the safetensors header's <c>__metadata__</c> (keys <c>data</c> and
/// <c>names</c>, the names as Python's dict repr).
/// </summary>
/// <param name="Data">The training's <c>data=</c> (a dataset YAML or a built-in set's name), or null.</param>
/// <param name="Names">The dataset's class names, or null.</param>
public sealed record TrainedOn(string? Data, IReadOnlyList<string>? Names)
{
    const string MetadataKey = "__metadata__";

    /// <summary>The safetensors <c>__metadata__</c> entries (string → string, as the format requires).</summary>
    public IReadOnlyDictionary<string, string> ToMetadata()
    {
        var entries = new Dictionary<string, string>(StringComparer.Ordinal);
        if (Data is not null) entries["data"] = Data;
        if (Names is not null) entries["names"] = UltralyticsMetadata.FormatNames(Names);
        return entries;
    }

    /// <summary>Reads <see cref="ToMetadata"/>'s entries back; null when neither is there.</summary>
    public static TrainedOn? FromMetadata(IReadOnlyDictionary<string, string> metadata)
    {
        string? data = metadata.GetValueOrDefault("data");
        var names = metadata.TryGetValue("names", out var text) ? UltralyticsMetadata.ParseNames(text) : null;
        return data is null && names is null ? null : new TrainedOn(data, names);
    }

    /// <summary>
    /// The safetensors file <paramref name="safetensors"/> (as a writer made it) with <paramref name="metadata"/> as its
    /// header's <c>__metadata__</c>; the header is padded with spaces to a multiple of 8 bytes, as the format recommends.
    /// The tensors' offsets count from the end of the header, so they stay as they are.
    /// </summary>
    public static byte[] WithMetadata(byte[] safetensors, IReadOnlyDictionary<string, string> metadata)
    {
        long length = BitConverter.ToInt64(safetensors, 0);
        var header = JsonNode.Parse(safetensors.AsSpan(8, (int)length))!.AsObject();
        header.Remove(MetadataKey);
        var entries = new JsonObject();
        foreach (var (key, value) in metadata) entries[key] = value;
        var rebuilt = new JsonObject { [MetadataKey] = entries };
        foreach (var (key, value) in header.ToList())
        {
            header.Remove(key);
            rebuilt[key] = value;
        }
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(rebuilt);
        int padded = (json.Length + 7) / 8 * 8;
        var result = new byte[8 + padded + safetensors.Length - 8 - length];
        BitConverter.GetBytes((long)padded).CopyTo(result, 0);
        json.CopyTo(result, 8);
        result.AsSpan(8 + json.Length, padded - json.Length).Fill((byte)' ');
        safetensors.AsSpan(8 + (int)length).CopyTo(result.AsSpan(8 + padded));
        return result;
    }

    /// <summary>The <c>__metadata__</c> of a safetensors file (empty when it has none).</summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path)
    {
        using var stream = File.OpenRead(path);
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        long length = BitConverter.ToInt64(lengthBytes);
        if (length <= 0 || length > stream.Length - 8) throw new InvalidDataException($"{path}: not a safetensors file (header length {length}).");
        var json = new byte[length];
        stream.ReadExactly(json);
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        using var document = JsonDocument.Parse(json);
        if (document.RootElement.TryGetProperty(MetadataKey, out var entries) && entries.ValueKind == JsonValueKind.Object)
            foreach (var entry in entries.EnumerateObject())
                if (entry.Value.ValueKind == JsonValueKind.String) result[entry.Name] = entry.Value.GetString()!;
        return result;
    }
}

namespace Osprey.Data;

/// <summary>Turns a <c>data=</c> argument into a <see cref="DatasetConfig"/>.</summary>
public static class DatasetCatalog
{
    /// <summary><c>shapes</c> (or <c>shapes.yaml</c>) = the built-in synthetic set, generated on first use into the cache
    /// folder; anything else is the path of an Ultralytics dataset YAML.</summary>
    public static DatasetConfig Resolve(string data, string? cacheDirectory = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(data);
        var trimmed = data.Trim();
        if (IsShapes(trimmed))
            return DatasetYaml.Load(ShapesDataset.EnsureGenerated(new ShapesOptions(), cacheDirectory));
        if (File.Exists(trimmed)) return DatasetYaml.Load(trimmed);
        throw new FileNotFoundException($"Dataset '{data}' is neither 'shapes' nor an existing dataset YAML file.", trimmed);
    }

    /// <summary>True when <paramref name="data"/> names the built-in synthetic set (and no such file exists).</summary>
    public static bool IsShapes(string? data)
    {
        string trimmed = (data ?? "").Trim();
        return trimmed is "shapes" or "shapes.yaml" && !File.Exists(trimmed);
    }
}

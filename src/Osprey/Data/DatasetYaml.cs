using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Osprey.Data;

/// <summary>Reads an Ultralytics dataset YAML (<c>path</c>, <c>train</c>/<c>val</c>/<c>test</c>, <c>names</c> as map or list).</summary>
public static class DatasetYaml
{
    /// <summary>Parses <paramref name="yamlPath"/>. <c>path</c> (default and <c>.</c> = the YAML's folder) is taken relative
    /// to the YAML's folder; split entries relative to <c>path</c>.</summary>
    public static DatasetConfig Load(string yamlPath)
    {
        yamlPath = Path.GetFullPath(yamlPath);
        if (!File.Exists(yamlPath)) throw new FileNotFoundException($"Dataset YAML not found: {yamlPath}", yamlPath);
        var stream = new YamlStream();
        using (var reader = new StreamReader(yamlPath)) stream.Load(reader);
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new InvalidDataException($"Dataset YAML {yamlPath} is not a mapping.");

        var yamlDir = Path.GetDirectoryName(yamlPath)!;
        var pathValue = Scalar(root, "path");
        var datasetRoot = string.IsNullOrWhiteSpace(pathValue) ? yamlDir : Path.GetFullPath(Path.Combine(yamlDir, ExpandHome(pathValue)));

        var names = ReadNames(root, yamlPath);
        var ncValue = Scalar(root, "nc");
        if (names.Count == 0 && int.TryParse(ncValue, NumberStyles.Integer, CultureInfo.InvariantCulture, out var nc))
            names = Enumerable.Range(0, nc).Select(i => $"class{i}").ToList();
        if (names.Count == 0) throw new InvalidDataException($"Dataset YAML {yamlPath} has no 'names'.");

        var train = ReadSources(root, "train", datasetRoot);
        var val = ReadSources(root, "val", datasetRoot);
        if (train.Count == 0 && val.Count == 0) throw new InvalidDataException($"Dataset YAML {yamlPath} has neither 'train' nor 'val'.");
        return new DatasetConfig(Path.GetFileNameWithoutExtension(yamlPath), yamlPath, datasetRoot, train, val,
            ReadSources(root, "test", datasetRoot), names);
    }

    private static string ExpandHome(string p) =>
        p.StartsWith('~') ? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile) + p[1..] : p;

    private static YamlNode? Child(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var node) ? node : null;

    private static string? Scalar(YamlMappingNode map, string key) => (Child(map, key) as YamlScalarNode)?.Value;

    private static List<string> ReadSources(YamlMappingNode root, string key, string datasetRoot)
    {
        var node = Child(root, key);
        IEnumerable<string?> items = node switch
        {
            YamlScalarNode s => [s.Value],
            YamlSequenceNode seq => seq.Children.OfType<YamlScalarNode>().Select(s => s.Value),
            _ => [],
        };
        return items.Where(v => !string.IsNullOrWhiteSpace(v))
            .Select(v => Path.GetFullPath(Path.Combine(datasetRoot, ExpandHome(v!.Trim()))))
            .ToList();
    }

    private static List<string> ReadNames(YamlMappingNode root, string yamlPath)
    {
        switch (Child(root, "names"))
        {
            case YamlSequenceNode seq:
                return seq.Children.Select(c => (c as YamlScalarNode)?.Value ?? "").ToList();
            case YamlMappingNode map:
                var pairs = new SortedDictionary<int, string>();
                foreach (var (k, v) in map.Children)
                {
                    if (!int.TryParse((k as YamlScalarNode)?.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var id) || id < 0)
                        throw new InvalidDataException($"Dataset YAML {yamlPath}: class id '{k}' in 'names' is not a non-negative integer.");
                    pairs[id] = (v as YamlScalarNode)?.Value ?? "";
                }
                if (pairs.Count == 0) return [];
                var count = pairs.Keys.Max() + 1;
                return Enumerable.Range(0, count).Select(i => pairs.TryGetValue(i, out var n) ? n : $"class{i}").ToList();
            default:
                return [];
        }
    }
}

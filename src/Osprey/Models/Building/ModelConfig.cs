using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Osprey.Models.Building;

/// <summary>
/// A parsed Ultralytics model YAML (<c>nc</c>, <c>scales</c>, <c>backbone</c>, <c>head</c>) with the scale resolved.
/// </summary>
public sealed partial class ModelConfig
{
    private const string ResourcePrefix = "Osprey.Models.Configs.";

    private ModelConfig(string source, string text)
    {
        Source = source;
        Text = text;
    }

    /// <summary>Where the YAML came from (a path, or <c>embedded:yolov8.yaml</c>).</summary>
    public string Source { get; }

    /// <summary>The YAML text exactly as read.</summary>
    public string Text { get; }

    /// <summary>Number of classes (after any override).</summary>
    public int Nc { get; private set; }

    /// <summary>The scale letter used (n, s, m, l, x), or null when the YAML has no <c>scales</c>.</summary>
    public string? Scale { get; private set; }

    /// <summary>Depth multiple.</summary>
    public double Depth { get; private set; } = 1.0;

    /// <summary>Width multiple.</summary>
    public double Width { get; private set; } = 1.0;

    /// <summary>Channel cap before width scaling.</summary>
    public int MaxChannels { get; private set; } = int.MaxValue;

    /// <summary>Input image channels (<c>ch</c>/<c>channels</c>, default 3).</summary>
    public int InputChannels { get; private set; } = 3;

    /// <summary>Class names: from <c>names</c> if present, else <c>class0</c>…</summary>
    public IReadOnlyList<string> Names { get; private set; } = Array.Empty<string>();

    /// <summary>Backbone then head rows.</summary>
    public IReadOnlyList<LayerRow> Layers { get; private set; } = Array.Empty<LayerRow>();

    /// <summary>Names of the configs shipped inside the library (e.g. <c>yolov8.yaml</c>).</summary>
    public static IReadOnlyList<string> EmbeddedNames =>
        typeof(ModelConfig).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal))
            .Select(n => n[ResourcePrefix.Length..]).ToArray();

    /// <summary>
    /// Loads a model YAML by path or name. A file on disk wins; otherwise the scale-less name
    /// (<c>yolov8n.yaml</c> → <c>yolov8.yaml</c>) is tried on disk, then among the embedded configs.
    /// The scale comes from a <c>scale</c> key, else from the file name (Ultralytics' guess_model_scale).
    /// </summary>
    /// <param name="nameOrPath">e.g. <c>yolov8n.yaml</c> or <c>/path/to/custom.yaml</c>.</param>
    /// <param name="nc">Overrides the YAML's <c>nc</c> when given.</param>
    public static ModelConfig Load(string nameOrPath, int? nc = null)
    {
        var (source, text) = Read(nameOrPath);
        return Parse(text, source, GuessScale(nameOrPath), nc);
    }

    /// <summary>Parses YAML text (see <see cref="Load"/>); errors are <see cref="InvalidDataException"/> naming <paramref name="source"/>.</summary>
    public static ModelConfig Parse(string text, string source, string? guessedScale = null, int? nc = null)
    {
        var config = new ModelConfig(source, text);
        YamlMappingNode root;
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(text));
            root = stream.Documents.Count > 0 && stream.Documents[0].RootNode is YamlMappingNode map
                ? map
                : throw new InvalidDataException($"{source}: the model YAML must be a mapping with nc, backbone and head.");
        }
        catch (YamlException e)
        {
            throw new InvalidDataException($"{source}: invalid YAML at {e.Start}: {e.Message}", e);
        }
        config.Populate(root, guessedScale, nc);
        return config;
    }

    /// <summary>
    /// Ultralytics' guess_model_scale: the letter after the version number in the file stem
    /// (<c>yolov8n.yaml</c> → n, <c>yolo11s-p2.yaml</c> → s), or null.
    /// </summary>
    public static string? GuessScale(string nameOrPath)
    {
        var match = ScaleInName().Match(Path.GetFileNameWithoutExtension(nameOrPath));
        return match.Success ? match.Groups[2].Value.ToLowerInvariant() : null;
    }

    /// <summary>
    /// The YAML text with <c>nc</c> and <c>scale</c> pinned at the top (other top-level nc/scale lines dropped),
    /// so the exact model can be rebuilt from the text alone (used for weight sidecars).
    /// </summary>
    public string ToPinnedYaml()
    {
        var lines = Text.Split('\n').Select(l => l.TrimEnd('\r'))
            .Where(l => !TopLevelNcOrScale().IsMatch(l));
        var header = $"nc: {Nc.ToString(CultureInfo.InvariantCulture)}\n" + (Scale is null ? "" : $"scale: {Scale}\n");
        return header + string.Join("\n", lines);
    }

    private static (string Source, string Text) Read(string nameOrPath)
    {
        if (File.Exists(nameOrPath)) return (nameOrPath, File.ReadAllText(nameOrPath));
        string unified = ScaleSuffix().Replace(nameOrPath, "$1$3");
        if (File.Exists(unified)) return (unified, File.ReadAllText(unified));
        foreach (var name in new[] { Path.GetFileName(nameOrPath), Path.GetFileName(unified) })
        {
            using var resource = typeof(ModelConfig).Assembly.GetManifestResourceStream(ResourcePrefix + name);
            if (resource is null) continue;
            using var reader = new StreamReader(resource);
            return ($"embedded:{name}", reader.ReadToEnd());
        }
        throw new FileNotFoundException(
            $"Model config '{nameOrPath}' not found on disk (also tried '{unified}') nor embedded " +
            $"(embedded: {string.Join(", ", EmbeddedNames)}).", nameOrPath);
    }

    private void Populate(YamlMappingNode root, string? guessedScale, int? ncOverride)
    {
        var entries = root.Children.ToDictionary(kv => Scalar(kv.Key, "top-level key"), kv => kv.Value);
        Nc = ncOverride ?? (entries.TryGetValue("nc", out var ncNode) ? ParseInt(ncNode, "nc") : 80);
        if (Nc <= 0) throw Error($"nc must be positive, got {Nc}.");
        if (entries.TryGetValue("ch", out var chNode) || entries.TryGetValue("channels", out chNode))
            InputChannels = ParseInt(chNode, "ch");

        if (entries.TryGetValue("scales", out var scalesNode))
        {
            if (scalesNode is not YamlMappingNode scales || scales.Children.Count == 0)
                throw Error("'scales' must map scale letters to [depth, width, max_channels].");
            string? scale = entries.TryGetValue("scale", out var scaleNode) ? Scalar(scaleNode, "scale") : guessedScale;
            var keys = scales.Children.Keys.Select(k => Scalar(k, "scale key")).ToList();
            scale ??= keys[0]; // Ultralytics falls back to the first scale too
            if (!keys.Contains(scale))
                throw Error($"scale '{scale}' is not in scales ({string.Join(", ", keys)}).");
            if (scales.Children[new YamlScalarNode(scale)] is not YamlSequenceNode values || values.Children.Count != 3)
                throw Error($"scales.{scale} must be [depth, width, max_channels].");
            Scale = scale;
            Depth = ParseDouble(values.Children[0], $"scales.{scale}[0]");
            Width = ParseDouble(values.Children[1], $"scales.{scale}[1]");
            MaxChannels = ParseInt(values.Children[2], $"scales.{scale}[2]");
        }
        else if (entries.TryGetValue("depth_multiple", out var depthNode))
        {
            Depth = ParseDouble(depthNode, "depth_multiple");
            Width = entries.TryGetValue("width_multiple", out var widthNode) ? ParseDouble(widthNode, "width_multiple") : 1.0;
        }

        Names = entries.TryGetValue("names", out var namesNode) ? ParseNames(namesNode) : DefaultNames(Nc);
        if (Names.Count != Nc) Names = DefaultNames(Nc);

        var rows = new List<LayerRow>();
        foreach (var section in new[] { "backbone", "head" })
        {
            if (!entries.TryGetValue(section, out var sectionNode) || sectionNode is not YamlSequenceNode list)
                throw Error($"missing or malformed '{section}' (a list of [from, repeats, module, args]).");
            foreach (var rowNode in list.Children)
                rows.Add(ParseRow(rowNode, rows.Count));
        }
        Layers = rows;
    }

    private LayerRow ParseRow(YamlNode node, int index)
    {
        if (node is not YamlSequenceNode row || row.Children.Count != 4)
            throw Error($"layer {index}: expected [from, repeats, module, args], got {node}.");
        int[] from = row.Children[0] switch
        {
            YamlSequenceNode many => many.Children.Select(c => ParseInt(c, $"layer {index} from")).ToArray(),
            var one => new[] { ParseInt(one, $"layer {index} from") },
        };
        int repeats = ParseInt(row.Children[1], $"layer {index} repeats");
        string module = Scalar(row.Children[2], $"layer {index} module");
        if (row.Children[3] is not YamlSequenceNode args)
            throw Error($"layer {index} ({module}): args must be a list.");
        return new LayerRow(index, from, repeats, module, args.Children.Select(ToArg).ToList());
    }

    private object? ToArg(YamlNode node) => node switch
    {
        YamlScalarNode scalar => scalar.Value == "nc" ? Nc.ToString(CultureInfo.InvariantCulture) : scalar.Value,
        YamlSequenceNode sequence => sequence.Children.Select(ToArg).ToList(),
        _ => throw Error($"unsupported argument {node}."),
    };

    private IReadOnlyList<string> ParseNames(YamlNode node) => node switch
    {
        YamlSequenceNode list => list.Children.Select(c => Scalar(c, "names")).ToArray(),
        YamlMappingNode map => map.Children.OrderBy(kv => ParseInt(kv.Key, "names key"))
            .Select(kv => Scalar(kv.Value, "names")).ToArray(),
        _ => throw Error("names must be a list or a mapping."),
    };

    private static string[] DefaultNames(int nc) => Enumerable.Range(0, nc).Select(i => $"class{i}").ToArray();

    private string Scalar(YamlNode node, string what) =>
        node is YamlScalarNode { Value: not null } scalar ? scalar.Value : throw Error($"{what}: expected a scalar, got {node}.");

    private int ParseInt(YamlNode node, string what) =>
        int.TryParse(Scalar(node, what), NumberStyles.Integer, CultureInfo.InvariantCulture, out int value)
            ? value : throw Error($"{what}: expected an integer, got '{Scalar(node, what)}'.");

    private double ParseDouble(YamlNode node, string what) =>
        double.TryParse(Scalar(node, what), NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            ? value : throw Error($"{what}: expected a number, got '{Scalar(node, what)}'.");

    private InvalidDataException Error(string problem) => new($"{Source}: {problem}");

    [GeneratedRegex(@"yolo(e-)?[v]?\d+([nslmx])", RegexOptions.IgnoreCase)]
    private static partial Regex ScaleInName();

    [GeneratedRegex(@"(\d+)([nslmx])(.+)?$")]
    private static partial Regex ScaleSuffix();

    [GeneratedRegex(@"^(nc|scale)\s*:")]
    private static partial Regex TopLevelNcOrScale();
}

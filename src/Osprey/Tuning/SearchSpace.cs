using System.Globalization;
using Osprey.Config;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Osprey.Tuning;

/// <summary>One hyperparameter of a search space: an argument of <c>osprey train</c> and its range.</summary>
/// <param name="Key">The argument (<c>lr0</c>, <c>momentum</c>, …).</param>
/// <param name="Min">Lowest value.</param>
/// <param name="Max">Highest value.</param>
/// <param name="Gain">The genetic tuner's mutation gain (Ultralytics' optional third entry, 1 when absent).</param>
/// <param name="Integer">The argument takes whole numbers (<c>close_mosaic</c>): values are rounded and sampled as integers.</param>
public sealed record SearchDimension(string Key, double Min, double Max, double Gain = 1.0, bool Integer = false)
{
    /// <summary><paramref name="value"/> clamped to [<see cref="Min"/>, <see cref="Max"/>] and rounded to 5 decimal places
    /// (Ultralytics' genetic tuner), or to a whole number for an integer argument.</summary>
    public double Constrain(double value)
    {
        double clamped = Math.Min(Math.Max(value, Min), Max);
        return Integer ? Math.Round(clamped, MidpointRounding.ToEven) : Math.Round(clamped, 5, MidpointRounding.ToEven);
    }
}

/// <summary>
/// The hyperparameters a tuner searches, in order (the order of tune_results.csv's columns). The defaults are
/// Ultralytics': <see cref="Genetic"/> is the space of its genetic tuner (<c>ultralytics/engine/tuner.py</c>, 8.3,
/// YOLO11-era, the single-parent rule); <see cref="Asha"/> is the <c>default_space</c> of its Ray Tune integration
/// (<c>ultralytics/utils/tuner.py</c>, current main, whose box and dfl ranges fit the v8 losses). Ultralytics' keys that
/// Osprey has no argument for (<c>bgr</c>, <c>cutmix</c>, <c>copy_paste</c>) are left out. A YAML file
/// (<c>space=</c>) replaces the default: <c>key: [min, max]</c> or <c>key: [min, max, gain]</c> per line.
/// </summary>
public sealed class SearchSpace
{
    SearchSpace(IReadOnlyList<SearchDimension> dimensions) => Dimensions = dimensions;

    /// <summary>The hyperparameters, in order.</summary>
    public IReadOnlyList<SearchDimension> Dimensions { get; }

    /// <summary>Their keys, in order.</summary>
    public IReadOnlyList<string> Keys => Dimensions.Select(d => d.Key).ToArray();

    /// <summary>Ultralytics 8.3's genetic space (key: min, max[, gain]).</summary>
    public static SearchSpace Genetic { get; } = Of(
        ("lr0", 1e-5, 1e-1, 1), ("lrf", 0.0001, 0.1, 1), ("momentum", 0.7, 0.98, 0.3), ("weight_decay", 0.0, 0.001, 1),
        ("warmup_epochs", 0.0, 5.0, 1), ("warmup_momentum", 0.0, 0.95, 1), ("box", 1.0, 20.0, 1), ("cls", 0.2, 4.0, 1),
        ("dfl", 0.4, 6.0, 1), ("hsv_h", 0.0, 0.1, 1), ("hsv_s", 0.0, 0.9, 1), ("hsv_v", 0.0, 0.9, 1), ("degrees", 0.0, 45.0, 1),
        ("translate", 0.0, 0.9, 1), ("scale", 0.0, 0.95, 1), ("shear", 0.0, 10.0, 1), ("perspective", 0.0, 0.001, 1),
        ("flipud", 0.0, 1.0, 1), ("fliplr", 0.0, 1.0, 1), ("mosaic", 0.0, 1.0, 1), ("mixup", 0.0, 1.0, 1));

    /// <summary>Ultralytics' Ray Tune <c>default_space</c>: <c>tune.uniform(min, max)</c> per key, and
    /// <c>close_mosaic</c> <c>tune.randint(0, 11)</c> (0 … 10).</summary>
    public static SearchSpace Asha { get; } = Of(
        ("lr0", 1e-5, 1e-2, 1), ("lrf", 0.01, 1.0, 1), ("momentum", 0.7, 0.98, 1), ("weight_decay", 0.0, 0.001, 1),
        ("warmup_epochs", 0.0, 5.0, 1), ("warmup_momentum", 0.0, 0.95, 1), ("box", 1.0, 20.0, 1), ("cls", 0.1, 4.0, 1),
        ("dfl", 0.4, 12.0, 1), ("hsv_h", 0.0, 0.1, 1), ("hsv_s", 0.0, 0.9, 1), ("hsv_v", 0.0, 0.9, 1), ("degrees", 0.0, 45.0, 1),
        ("translate", 0.0, 0.9, 1), ("scale", 0.0, 0.95, 1), ("shear", 0.0, 10.0, 1), ("perspective", 0.0, 0.001, 1),
        ("flipud", 0.0, 1.0, 1), ("fliplr", 0.0, 1.0, 1), ("mosaic", 0.0, 1.0, 1), ("mixup", 0.0, 1.0, 1), ("close_mosaic", 0, 10, 1));

    /// <summary>The space of <paramref name="args"/>: the YAML of <c>space=</c>, else the default of <c>search=</c>.</summary>
    public static SearchSpace For(OspreyArgs args) =>
        args.Space is { } path ? Load(path) : args.Search == SearchMethod.Asha ? Asha : Genetic;

    /// <summary>A space from its dimensions (as saved in the tuner's state).</summary>
    /// <exception cref="ArgumentsException">A key is not a numeric argument, or a range is empty.</exception>
    public static SearchSpace From(IEnumerable<SearchDimension> dimensions)
    {
        var list = dimensions.ToList();
        foreach (var d in list) Check(d, "the search space");
        return new SearchSpace(list);
    }

    /// <summary>
    /// Reads a YAML space: a mapping of argument keys to <c>[min, max]</c> or <c>[min, max, gain]</c>.
    /// </summary>
    /// <exception cref="ArgumentsException">The file is missing, not YAML, or an entry is bad; the message names the file,
    /// the key and the problem.</exception>
    public static SearchSpace Load(string path)
    {
        if (!File.Exists(path)) throw new ArgumentsException($"space={path}: no such file");
        YamlMappingNode root;
        try
        {
            var stream = new YamlStream();
            using (var reader = new StreamReader(path)) stream.Load(reader);
            root = stream.Documents.Count > 0 && stream.Documents[0].RootNode is YamlMappingNode mapping
                ? mapping
                : throw new ArgumentsException($"{path}: a search space is a mapping of arguments to [min, max] or [min, max, gain]");
        }
        catch (YamlException e)
        {
            throw new ArgumentsException($"{path}: not valid YAML at line {e.Start.Line}: {e.Message}");
        }
        var dimensions = new List<SearchDimension>();
        foreach (var (keyNode, valueNode) in root.Children)
        {
            string key = ((YamlScalarNode)keyNode).Value ?? "";
            dimensions.Add(Parse(path, key, valueNode)); // YamlDotNet rejects a key given twice
        }
        if (dimensions.Count == 0) throw new ArgumentsException($"{path}: the search space is empty");
        return new SearchSpace(dimensions);
    }

    /// <summary>A uniform draw from every range (Ray Tune's <c>tune.uniform</c>; integer arguments
    /// <c>tune.randint(min, max + 1)</c>), from <paramref name="random"/>, in the order of <see cref="Dimensions"/>.</summary>
    public IReadOnlyDictionary<string, double> Sample(TuneRandom random)
    {
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var d in Dimensions)
        {
            double u = random.NextDouble();
            values[d.Key] = d.Integer ? Math.Min(d.Max, Math.Floor(d.Min + u * (d.Max - d.Min + 1))) : d.Min + u * (d.Max - d.Min);
        }
        return values;
    }

    /// <summary>The values <paramref name="args"/> gives the space's arguments (given or default), constrained to the space
    /// (the first trial of the genetic tuner).</summary>
    public IReadOnlyDictionary<string, double> ValuesOf(OspreyArgs args) => Dimensions.ToDictionary(d => d.Key,
        d => d.Constrain(Convert.ToDouble(ArgsSchema.Find(d.Key)!.Property.GetValue(args), CultureInfo.InvariantCulture)), StringComparer.Ordinal);

    static SearchSpace Of(params (string Key, double Min, double Max, double Gain)[] entries) =>
        new(entries.Select(e => new SearchDimension(e.Key, e.Min, e.Max, e.Gain, IsInteger(e.Key))).ToArray());

    static bool IsInteger(string key) => ArgsSchema.Find(key) is { } spec && (Nullable.GetUnderlyingType(spec.Type) ?? spec.Type) == typeof(int);

    static SearchDimension Parse(string path, string key, YamlNode node)
    {
        string where = $"{path}: '{key}'";
        if (node is not YamlSequenceNode sequence || sequence.Children.Count is not (2 or 3))
            throw new ArgumentsException($"{where} needs [min, max] or [min, max, gain], e.g. {key}: [0.001, 0.1]");
        var numbers = new double[sequence.Children.Count];
        for (int i = 0; i < numbers.Length; i++)
        {
            string text = (sequence.Children[i] as YamlScalarNode)?.Value ?? "";
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out numbers[i]) || !double.IsFinite(numbers[i]))
                throw new ArgumentsException($"{where}: '{text}' is not a number");
        }
        var dimension = new SearchDimension(key, numbers[0], numbers[1], numbers.Length == 3 ? numbers[2] : 1.0, IsInteger(key));
        Check(dimension, path);
        return dimension;
    }

    static void Check(SearchDimension d, string where)
    {
        var spec = ArgsSchema.Find(d.Key) ?? throw new ArgumentsException(
            $"{where}: '{d.Key}' is not an osprey argument; did you mean '{ArgsSchema.Nearest(d.Key)}'?");
        Type type = Nullable.GetUnderlyingType(spec.Type) ?? spec.Type;
        if (type != typeof(double) && type != typeof(int))
            throw new ArgumentsException($"{where}: '{d.Key}' is not a number argument and cannot be tuned");
        if (d.Key is "epochs" or "iterations" or "trials_at_once" or "grace_period")
            throw new ArgumentsException($"{where}: '{d.Key}' sets the tuner itself and cannot be tuned");
        if (!(d.Min <= d.Max)) throw new ArgumentsException($"{where}: '{d.Key}' has min {d.Min} above max {d.Max}");
        if (!(d.Gain >= 0)) throw new ArgumentsException($"{where}: '{d.Key}' has a negative gain {d.Gain}");
    }
}

using System.Globalization;

namespace Osprey.Models.Building;

/// <summary>
/// What a <see cref="LayerFactory"/> gets: resolved input channels, the YAML args, scaled repeats and the model's
/// scaling constants, plus Ultralytics' argument and channel helpers.
/// </summary>
public sealed class LayerContext
{
    internal LayerContext(ModelConfig config, LayerRow row, IReadOnlyList<long> inputChannels, int repeats)
    {
        Config = config;
        Row = row;
        InputChannels = inputChannels;
        Repeats = repeats;
    }

    /// <summary>The model config (nc, depth, width, max channels, source).</summary>
    public ModelConfig Config { get; }

    /// <summary>The YAML row being built.</summary>
    public LayerRow Row { get; }

    /// <summary>Output channels of each <c>from</c> layer (the image channels for the first layer).</summary>
    public IReadOnlyList<long> InputChannels { get; }

    /// <summary>Channels of the first input (Ultralytics' <c>c1 = ch[f]</c>).</summary>
    public long InputChannel => InputChannels[0];

    /// <summary>Repeats after depth scaling: max(round(n·depth), 1) when n &gt; 1.</summary>
    public int Repeats { get; }

    /// <summary>Number of classes.</summary>
    public int Nc => Config.Nc;

    /// <summary>Width multiple.</summary>
    public double Width => Config.Width;

    /// <summary>Depth multiple.</summary>
    public double Depth => Config.Depth;

    /// <summary>Channel cap.</summary>
    public int MaxChannels => Config.MaxChannels;

    /// <summary>Number of YAML args.</summary>
    public int ArgCount => Row.Args.Count;

    /// <summary>Ultralytics' output-channel rule: make_divisible(min(c2, max_channels)·width, 8) unless c2 == nc.</summary>
    public long ScaleChannels(long channels) =>
        channels == Nc ? channels : MakeDivisible(Math.Min(channels, MaxChannels) * Width, 8);

    /// <summary>Smallest multiple of <paramref name="divisor"/> ≥ <paramref name="value"/> (ceil).</summary>
    public static long MakeDivisible(double value, long divisor) => (long)Math.Ceiling(value / divisor) * divisor;

    /// <summary>True when arg <paramref name="index"/> exists and is not None/null.</summary>
    public bool HasArg(int index) =>
        index < Row.Args.Count && Row.Args[index] switch { null => false, string text => !IsNone(text), _ => true };

    /// <summary>Integer arg, or <paramref name="fallback"/> when absent or None.</summary>
    public long Int(int index, long fallback)
    {
        if (!HasArg(index)) return fallback;
        string text = ScalarArg(index);
        return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long value)
            ? value : throw Error($"arg {index} must be an integer, got '{text}'.");
    }

    /// <summary>Nullable integer arg (None → null).</summary>
    public long? IntOrNull(int index) => HasArg(index) ? Int(index, 0) : null;

    /// <summary>Floating-point arg.</summary>
    public double Double(int index, double fallback)
    {
        if (!HasArg(index)) return fallback;
        string text = ScalarArg(index);
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            ? value : throw Error($"arg {index} must be a number, got '{text}'.");
    }

    /// <summary>Boolean arg (True/False/true/false).</summary>
    public bool Bool(int index, bool fallback)
    {
        if (!HasArg(index)) return fallback;
        string text = ScalarArg(index);
        return text.ToLowerInvariant() switch
        {
            "true" => true,
            "false" => false,
            _ => throw Error($"arg {index} must be True or False, got '{text}'."),
        };
    }

    /// <summary>String arg with surrounding quotes removed.</summary>
    public string? String(int index) => HasArg(index) ? ScalarArg(index).Trim('"', '\'') : null;

    /// <summary>Resolved arguments as the layer table writes them: <c>[3, 16, 3, 2]</c> (invariant culture).</summary>
    public static string FormatArguments(params object[] values) => "[" + string.Join(", ", values.Select(FormatArgument)) + "]";

    /// <summary>One argument in the layer table's form (numbers in the invariant culture).</summary>
    public static string FormatArgument(object value) => value switch
    {
        double d => d.ToString(CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    /// <summary>An <see cref="InvalidDataException"/> naming the file, layer and module.</summary>
    public InvalidDataException Error(string problem) =>
        new($"{Config.Source}: layer {Row.Index} ({Row.Module}): {problem}");

    private string ScalarArg(int index) =>
        Row.Args[index] as string ?? throw Error($"arg {index} must be a scalar.");

    private static bool IsNone(string text) => text is "None" or "null" or "~" or "";
}

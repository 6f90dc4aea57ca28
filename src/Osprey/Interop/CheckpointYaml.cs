using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;
using YamlDotNet.RepresentationModel;

namespace Osprey.Interop;

/// <summary>
/// A model's <c>yaml</c> between its Python form (the dict Ultralytics keeps as <c>model.yaml</c>: str, int, float, bool,
/// None, lists, dicts) and YAML text for <see cref="Models.Building.ModelConfig"/>: one <c>key: value</c> line per
/// top-level key, values in flow style with Python's spelling of True/False/None, as the YAML files write them.
/// </summary>
public static class CheckpointYaml
{
    // The order of Ultralytics' model YAMLs (a pickled dict has none), then the rest by name.
    private static readonly string[] KeyOrder = { "nc", "scale", "scales", "ch", "channels", "backbone", "head" };

    /// <summary>The dict as YAML text, with <paramref name="names"/> (when any) as its <c>names</c>.</summary>
    public static string ToText(IDictionary yaml, IReadOnlyList<string> names)
    {
        var text = new StringBuilder();
        var entries = Entries(yaml).Select(e => (Key: Convert.ToString(e.Key, CultureInfo.InvariantCulture) ?? "", e.Value))
            .Where(e => e.Key != "names")
            .OrderBy(e => Array.IndexOf(KeyOrder, e.Key) is var i && i >= 0 ? i : KeyOrder.Length).ThenBy(e => e.Key, StringComparer.Ordinal);
        foreach (var (key, value) in entries) text.Append(Key(key)).Append(": ").Append(Flow(value)).Append('\n');
        if (names.Count > 0) text.Append("names: ").Append(Flow(names.ToList())).Append('\n');
        return text.ToString();
    }

    /// <summary>A dictionary's entries (through its IDictionaryEnumerator: a generic one's IEnumerable yields KeyValuePairs).</summary>
    public static IEnumerable<DictionaryEntry> Entries(IDictionary dict)
    {
        var enumerator = dict.GetEnumerator();
        while (enumerator.MoveNext()) yield return enumerator.Entry;
    }

    /// <summary>YAML text as Python data (a dict of str, int, float, bool, None, lists and dicts), insertion-ordered.</summary>
    public static Dictionary<string, object?> ToDict(string yamlText)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yamlText));
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new InvalidDataException("the model YAML is not a mapping.");
        return (Dictionary<string, object?>)Value(root)!;
    }

    private static object? Value(YamlNode node) => node switch
    {
        YamlMappingNode map => map.Children.ToDictionary(kv => ((YamlScalarNode)kv.Key).Value ?? "", kv => Value(kv.Value)),
        YamlSequenceNode list => list.Children.Select(Value).ToList(),
        YamlScalarNode scalar => Scalar(scalar),
        _ => throw new InvalidDataException($"unsupported YAML node {node}."),
    };

    private static object? Scalar(YamlScalarNode scalar)
    {
        string value = scalar.Value ?? "";
        if (scalar.Style is YamlDotNet.Core.ScalarStyle.SingleQuoted or YamlDotNet.Core.ScalarStyle.DoubleQuoted) return value;
        if (value is "" or "~" or "null" or "None") return null;
        if (value is "True" or "true") return true;
        if (value is "False" or "false") return false;
        if (int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int small)) return small;
        if (long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long large)) return large;
        if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double real)) return real;
        return value;
    }

    // Plain keys bare (ModelConfig.ToPinnedYaml finds a top-level "nc:" line), others quoted.
    private static string Key(string key) =>
        key.Length > 0 && key.All(c => char.IsAsciiLetterOrDigit(c) || c == '_') && !char.IsAsciiDigit(key[0]) ? key : JsonSerializer.Serialize(key);

    private static string Flow(object? value) => value switch
    {
        null => "None",
        bool b => b ? "True" : "False",
        string s => JsonSerializer.Serialize(s),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        IDictionary map => "{" + string.Join(", ", Entries(map).Select(e => $"{JsonSerializer.Serialize(Convert.ToString(e.Key, CultureInfo.InvariantCulture))}: {Flow(e.Value)}")) + "}",
        IEnumerable list => "[" + string.Join(", ", list.Cast<object?>().Select(Flow)) + "]",
        IConvertible number => Convert.ToString(number, CultureInfo.InvariantCulture) ?? "",
        _ => throw new InvalidDataException($"unsupported value {value.GetType().Name} in the model yaml."),
    };
}

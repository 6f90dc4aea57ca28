using System.Globalization;
using System.Text;

namespace Osprey.Onnx;

/// <summary>
/// The metadata an Ultralytics export writes (ONNX <c>metadata_props</c>), with its Python-repr formats:
/// <c>imgsz</c> = <c>[640, 640]</c>, <c>names</c> = <c>{0: 'person', 1: 'bicycle', …}</c>, <c>stride</c> = <c>32</c>.
/// </summary>
public static class UltralyticsMetadata
{
    /// <summary>The Ultralytics release whose export metadata Osprey writes (key for key, value for value): the one that wrote
    /// Ultralytics' int8 YOLOv8n export in the shared data (its <c>version</c>).</summary>
    public const string Version = "8.3.143";

    /// <summary>Ultralytics' exporter's description:
    /// <c>f"Ultralytics {pretty_name} model {f'trained on {data}' if data else ''}"</c> (a trailing space without data).</summary>
    public static string Description(string prettyName, string? data) =>
        $"Ultralytics {prettyName} model {(string.IsNullOrEmpty(data) ? "" : $"trained on {data}")}";

    /// <summary>The <c>data</c> a description names ("… model trained on coco.yaml" → coco.yaml), or null.</summary>
    public static string? TrainedOn(string? description)
    {
        const string marker = " model trained on ";
        int at = description?.IndexOf(marker, StringComparison.Ordinal) ?? -1;
        return at < 0 ? null : description![(at + marker.Length)..];
    }

    /// <summary>Python's <c>str()</c> of a bool.</summary>
    public static string Py(bool value) => value ? "True" : "False";

    /// <summary>Python's repr of a dict int → str (as <c>str(names)</c> writes it).</summary>
    public static string FormatNames(IReadOnlyList<string> names) =>
        "{" + string.Join(", ", names.Select((n, i) => $"{i.ToString(CultureInfo.InvariantCulture)}: {PythonRepr(n)}")) + "}";

    /// <summary>Python's repr of a list of ints: <c>[640, 640]</c>.</summary>
    public static string FormatInts(IEnumerable<int> values) =>
        "[" + string.Join(", ", values.Select(v => v.ToString(CultureInfo.InvariantCulture))) + "]";

    /// <summary>Python's repr of a str: single quotes unless the text holds a single quote and no double quote.</summary>
    public static string PythonRepr(string text)
    {
        char quote = text.Contains('\'') && !text.Contains('"') ? '"' : '\'';
        var builder = new StringBuilder().Append(quote);
        foreach (char c in text)
        {
            if (c == '\\') builder.Append("\\\\");
            else if (c == quote) builder.Append('\\').Append(c);
            else if (c == '\n') builder.Append("\\n");
            else if (c == '\t') builder.Append("\\t");
            else if (c == '\r') builder.Append("\\r");
            else builder.Append(c);
        }
        return builder.Append(quote).ToString();
    }

    /// <summary>Parses <c>{0: 'person', 1: "it's"}</c> (a Python dict literal of int → str) or a list literal.</summary>
    /// <exception cref="FormatException">Not such a literal.</exception>
    public static IReadOnlyList<string> ParseNames(string text)
    {
        int pos = 0;
        Skip(text, ref pos);
        if (pos >= text.Length) throw new FormatException("names: empty");
        bool isDict = text[pos] == '{';
        if (!isDict && text[pos] != '[') throw new FormatException($"names: expected '{{' or '[', got '{text[pos]}'");
        char close = isDict ? '}' : ']';
        pos++;
        var entries = new SortedDictionary<int, string>();
        int next = 0;
        while (true)
        {
            Skip(text, ref pos);
            if (pos >= text.Length) throw new FormatException("names: unterminated literal");
            if (text[pos] == close) break;
            int key = next;
            if (isDict)
            {
                int start = pos;
                while (pos < text.Length && (char.IsDigit(text[pos]) || text[pos] == '-')) pos++;
                key = int.Parse(text[start..pos], NumberStyles.Integer, CultureInfo.InvariantCulture);
                Skip(text, ref pos);
                if (pos >= text.Length || text[pos] != ':') throw new FormatException($"names: expected ':' at {pos}");
                pos++;
                Skip(text, ref pos);
            }
            entries[key] = ReadString(text, ref pos);
            next++;
            Skip(text, ref pos);
            if (pos < text.Length && text[pos] == ',') pos++;
        }
        if (entries.Count > 0 && (entries.Keys.First() != 0 || entries.Keys.Last() != entries.Count - 1))
            throw new FormatException("names: keys must be 0 … n-1");
        return entries.Values.ToArray();
    }

    /// <summary>Parses <c>[640, 640]</c> or <c>640</c>.</summary>
    public static int[] ParseInts(string text) => text.Trim().Trim('[', ']', '(', ')')
        .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(s => int.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture)).ToArray();

    private static void Skip(string text, ref int pos)
    {
        while (pos < text.Length && char.IsWhiteSpace(text[pos])) pos++;
    }

    private static string ReadString(string text, ref int pos)
    {
        char quote = text[pos];
        if (quote is not ('\'' or '"')) throw new FormatException($"names: expected a quoted string at {pos}");
        pos++;
        var builder = new StringBuilder();
        while (pos < text.Length && text[pos] != quote)
        {
            if (text[pos] == '\\' && pos + 1 < text.Length)
            {
                pos++;
                builder.Append(text[pos] switch { 'n' => '\n', 't' => '\t', 'r' => '\r', var c => c });
            }
            else builder.Append(text[pos]);
            pos++;
        }
        if (pos >= text.Length) throw new FormatException("names: unterminated string");
        pos++;
        return builder.ToString();
    }
}

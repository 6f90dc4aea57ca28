using System.Text;

namespace Osprey.Config;

/// <summary>
/// args.yaml: every resolved argument, one <c>key: value</c> line each, as Ultralytics saves it, after a comment naming the
/// dialect (<see cref="Marker"/>). A file without it was written by Osprey before the typed arguments (2026-12-07) and is
/// read with that Osprey's meaning where it differed: <c>freeze=[N]</c> (one index) froze the first N layers.
/// </summary>
public static class ArgsYaml
{
    /// <summary>The first line of an args.yaml in today's dialect.</summary>
    public const string Marker = "# osprey args 2";

    /// <summary>The YAML text of <paramref name="args"/>.</summary>
    public static string Serialize(OspreyArgs args)
    {
        var sb = new StringBuilder(Marker).Append('\n');
        foreach (ArgSpec spec in ArgsSchema.All)
        {
            object? value = spec.Property.GetValue(args);
            string text = ArgsSchema.Format(value);
            text = value is string s ? Quote(s) : text switch
            {
                "True" => "true",
                "False" => "false",
                _ when value is not null && ArgumentValues.Handles(value.GetType()) => Quote(text),
                var other => other,
            };
            sb.Append(spec.Key).Append(": ").Append(text).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>Reads args.yaml text back (unknown keys are errors, as on the command line).</summary>
    public static OspreyArgs Deserialize(string yaml)
    {
        var pairs = new List<KeyValuePair<string, string>>();
        foreach (string line in yaml.Split('\n'))
        {
            if (line.Length == 0 || line.StartsWith('#')) continue;
            int colon = line.IndexOf(": ", StringComparison.Ordinal);
            if (colon < 0) throw new InvalidDataException($"args.yaml: bad line '{line}'");
            string value = line[(colon + 2)..];
            if (value.StartsWith('\'')) value = value[1..^1].Replace("''", "'");
            pairs.Add(new(line[..colon], value));
        }
        var args = ArgsParser.Parse(pairs);
        bool earlier = !yaml.StartsWith(Marker + "\n", StringComparison.Ordinal);
        // Osprey before the typed arguments read a one-element freeze list as a count: a resumed run keeps what it trained with
        return earlier && args.Freeze is { Count: null, Indices: [var n] } ? args with { Freeze = new FreezeLayers(n, Enumerable.Range(0, n).ToArray()) } : args;
    }

    static string Quote(string s) =>
        s.Length > 0 && s.All(c => char.IsLetterOrDigit(c) || c is '.' or '/' or '_' or '-' or ',')
            && s is not ("null" or "true" or "false" or "True" or "False" or "None") && !double.TryParse(s, out _)
            ? s
            : "'" + s.Replace("'", "''") + "'";
}

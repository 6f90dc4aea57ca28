using System.Text;

namespace Osprey.Config;

/// <summary>args.yaml: every resolved argument, one <c>key: value</c> line each, as Ultralytics saves it.</summary>
public static class ArgsYaml
{
    /// <summary>The YAML text of <paramref name="args"/>.</summary>
    public static string Serialize(OspreyArgs args)
    {
        var sb = new StringBuilder();
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

    /// <summary>Keys an earlier Osprey wrote to args.yaml (and into checkpoints) that no argument reads any more: skipped when
    /// reading, so that those runs still resume. <c>pretrained</c> was never read.</summary>
    static readonly HashSet<string> RetiredKeys = new(StringComparer.Ordinal) { "pretrained" };

    /// <summary>Reads args.yaml text back (unknown keys are errors, as on the command line).</summary>
    public static OspreyArgs Deserialize(string yaml)
    {
        var pairs = new List<KeyValuePair<string, string>>();
        foreach (string line in yaml.Split('\n'))
        {
            if (line.Length == 0 || line.StartsWith('#')) continue;
            int colon = line.IndexOf(": ", StringComparison.Ordinal);
            if (colon < 0) throw new InvalidDataException($"args.yaml: bad line '{line}'");
            string key = line[..colon], value = line[(colon + 2)..];
            if (RetiredKeys.Contains(key)) continue;
            if (value.StartsWith('\'')) value = value[1..^1].Replace("''", "'");
            pairs.Add(new(key, value));
        }
        return ArgsParser.Parse(pairs);
    }

    static string Quote(string s) =>
        s.Length > 0 && s.All(c => char.IsLetterOrDigit(c) || c is '.' or '/' or '_' or '-' or ',')
            && s is not ("null" or "true" or "false" or "True" or "False" or "None") && !double.TryParse(s, out _)
            ? s
            : "'" + s.Replace("'", "''") + "'";
}

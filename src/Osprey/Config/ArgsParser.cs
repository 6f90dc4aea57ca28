using System.Globalization;

namespace Osprey.Config;

/// <summary>A bad command-line argument: an unknown key, a missing or unparsable value.</summary>
public sealed class ArgumentsException(string message) : Exception(message);

/// <summary>
/// Reads Ultralytics-style <c>key=value</c> arguments and <c>--key value</c> / <c>--key=value</c> alike into
/// <see cref="OspreyArgs"/>. Bool arguments may be bare flags (<c>--verbose</c>). Unknown keys are errors that
/// name the key and the nearest valid one.
/// </summary>
public static class ArgsParser
{
    /// <summary>Splits tokens into (key, value) pairs in order; keys are checked against the schema.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Tokenize(IReadOnlyList<string> tokens)
    {
        var pairs = new List<KeyValuePair<string, string>>();
        for (int i = 0; i < tokens.Count; i++)
        {
            string token = tokens[i];
            string key, value;
            if (token.StartsWith("--", StringComparison.Ordinal))
            {
                string body = token[2..];
                int eq = body.IndexOf('=');
                if (eq >= 0)
                {
                    (key, value) = (Normalize(body[..eq]), body[(eq + 1)..]);
                    Check(key);
                }
                else
                {
                    key = Normalize(body);
                    ArgSpec spec = Check(key);
                    bool hasValue = i + 1 < tokens.Count && !tokens[i + 1].StartsWith("--", StringComparison.Ordinal)
                        && !(spec.IsFlag && !IsBool(tokens[i + 1]));
                    if (hasValue) value = tokens[++i];
                    else if (spec.IsFlag) value = "True";
                    else throw new ArgumentsException($"argument '{key}' needs a value: --{key} VALUE or {key}=VALUE");
                }
            }
            else
            {
                int eq = token.IndexOf('=');
                if (eq <= 0)
                    throw new ArgumentsException(
                        $"'{token}' is not an argument: write key=value (e.g. epochs=3) or --key value");
                (key, value) = (Normalize(token[..eq]), token[(eq + 1)..]);
                Check(key);
            }
            pairs.Add(new(key, value));
        }
        return pairs;
    }

    /// <summary>Parses tokens into new arguments: <paramref name="defaults"/> (or fresh defaults) with the tokens applied.</summary>
    public static OspreyArgs Parse(IReadOnlyList<string> tokens, OspreyArgs? defaults = null) => Parse(Tokenize(tokens), defaults);

    /// <summary>
    /// New arguments: <paramref name="defaults"/> (or fresh defaults) with each (key, text) pair converted to its argument's
    /// type and marked as given. Every value is checked here, so a bad one fails before anything runs.
    /// </summary>
    /// <exception cref="ArgumentsException">An unknown key or a value its argument does not take.</exception>
    public static OspreyArgs Parse(IEnumerable<KeyValuePair<string, string>> pairs, OspreyArgs? defaults = null)
    {
        var given = new HashSet<string>(defaults?.GivenKeys ?? Enumerable.Empty<string>(), StringComparer.Ordinal);
        var args = (defaults ?? new OspreyArgs()) with { GivenKeys = given };   // a new object: set while it is being made
        foreach (var (key, text) in pairs)
        {
            ArgSpec spec = Check(key);
            spec.Property.SetValue(args, Convert(spec, text.Trim()));
            given.Add(key);
        }
        return args;
    }

    static ArgSpec Check(string key) =>
        ArgsSchema.Find(key) ?? throw new ArgumentsException(
            $"'{key}' is not a valid osprey argument; did you mean '{ArgsSchema.Nearest(key)}'?");

    // `--save-json` and `save-json` are accepted for `save_json`.
    static string Normalize(string key) => key.Trim().Replace('-', '_');

    static bool IsBool(string text) => TryBool(text, out _);

    static bool TryBool(string text, out bool value)
    {
        switch (text.ToLowerInvariant())
        {
            case "true": case "1": case "yes": value = true; return true;
            case "false": case "0": case "no": value = false; return true;
            default: value = false; return false;
        }
    }

    static object? Convert(ArgSpec spec, string text)
    {
        Type type = Nullable.GetUnderlyingType(spec.Type) ?? spec.Type;
        bool nullable = spec.Type != type || !spec.Type.IsValueType;
        if (nullable && (text is "None" or "none" or "null" or "")) return null;
        if (type == typeof(string)) return text;
        if (ArgumentValues.Handles(type)) return ArgumentValues.Parse(type, text, spec.Key);
        if (type == typeof(bool))
            return TryBool(text, out bool b) ? b : throw Bad(spec, text, "True or False");
        if (type == typeof(int))
            return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i)
                ? i : throw Bad(spec, text, "an integer");
        if (type == typeof(double))
            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double d)
                ? d : throw Bad(spec, text, "a number");
        throw new InvalidOperationException($"argument '{spec.Key}' has unsupported type {type.Name}");
    }

    static ArgumentsException Bad(ArgSpec spec, string text, string expected) =>
        new($"'{spec.Key}={text}' is not valid: {spec.Key} takes {expected}");
}

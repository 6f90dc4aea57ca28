using System.ComponentModel;
using System.Globalization;
using System.Reflection;
using System.Text;

namespace Osprey.Config;

/// <summary>One argument: its snake_case key, CLR type, default and description.</summary>
public sealed record ArgSpec(string Key, Type Type, object? Default, string Description, PropertyInfo Property)
{
    /// <summary>True for bool arguments, which may be given as a bare flag (<c>--verbose</c>).</summary>
    public bool IsFlag => Type == typeof(bool);
}

/// <summary>The set of valid argument keys, derived once from <see cref="OspreyArgs"/>.</summary>
public static class ArgsSchema
{
    /// <summary>All arguments in declaration order.</summary>
    public static IReadOnlyList<ArgSpec> All { get; } = Build();

    static readonly Dictionary<string, ArgSpec> ByKey = All.ToDictionary(a => a.Key, StringComparer.Ordinal);

    /// <summary>The argument with this key, or null.</summary>
    public static ArgSpec? Find(string key) => ByKey.GetValueOrDefault(key);

    /// <summary>PascalCase → snake_case (<c>WarmupBiasLr</c> → <c>warmup_bias_lr</c>, <c>Lr0</c> → <c>lr0</c>).</summary>
    public static string ToSnakeCase(string name)
    {
        var sb = new StringBuilder(name.Length + 4);
        for (int i = 0; i < name.Length; i++)
        {
            char c = name[i];
            if (char.IsUpper(c) && i > 0) sb.Append('_');
            sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }

    /// <summary>The valid key closest to <paramref name="key"/> by edit distance.</summary>
    public static string Nearest(string key) =>
        All.Select(a => a.Key).OrderBy(k => EditDistance(key, k)).ThenBy(k => k, StringComparer.Ordinal).First();

    /// <summary>Levenshtein distance.</summary>
    public static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j] + 1, current[j - 1] + 1));
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }

    /// <summary>Formats a value the way Ultralytics writes it (True/False, null).</summary>
    public static string Format(object? value) => value switch
    {
        null => "null",
        _ when ArgumentValues.Handles(value.GetType()) => ArgumentValues.Format(value),
        bool b => b ? "True" : "False",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "null",
    };

    static List<ArgSpec> Build()
    {
        var defaults = new OspreyArgs();
        return typeof(OspreyArgs).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.SetMethod?.IsPublic == true)
            .Select(p => new ArgSpec(ToSnakeCase(p.Name), p.PropertyType, p.GetValue(defaults),
                p.GetCustomAttribute<DescriptionAttribute>()?.Description ?? "", p))
            .ToList();
    }
}

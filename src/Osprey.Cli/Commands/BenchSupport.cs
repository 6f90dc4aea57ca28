using System.Text.RegularExpressions;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary>Progress lines of the bench modes, written as they come (Progress&lt;T&gt; would post them to the thread pool),
/// one at a time (the launcher's reader threads may report concurrently), without terminal escape sequences.</summary>
sealed partial class BenchProgress(IAnsiConsole output) : IProgress<string>
{
    readonly Lock gate = new();

    public void Report(string value)
    {
        string text = TerminalEscape().Replace(value, ""); // a rank's .NET console may emit keypad-mode sequences
        lock (gate) output.MarkupLine($"[grey]{Markup.Escape(text)}[/]");
    }

    [GeneratedRegex(@"\x1b(\[[0-9;?]*[A-Za-z]|[=>])")]
    private static partial Regex TerminalEscape();
}

/// <summary>Where the bench modes find their Python reference scripts.</summary>
static class BenchReference
{
    /// <summary>bench/<paramref name="script"/> above the working folder or the executable (<paramref name="overrideVariable"/> overrides).</summary>
    public static string Script(string script, string overrideVariable)
    {
        if (Environment.GetEnvironmentVariable(overrideVariable) is { Length: > 0 } path) return path;
        foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "bench", script);
                if (File.Exists(candidate)) return candidate;
            }
        return Path.Combine("bench", script);
    }
}

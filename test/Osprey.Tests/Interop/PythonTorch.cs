using System.Diagnostics;
using Osprey.Tests.Data;

namespace Osprey.Tests.Interop;

/// <summary>
/// Debian's python3-torch (build/install-deps.sh installs it): /usr/bin/python3 (a pyenv python3 on PATH may lack torch).
/// Tests that need it report themselves skipped, with the reason, where it is missing.
/// </summary>
internal static class PythonTorch
{
    private const string Python = "/usr/bin/python3";
    private static readonly Lazy<string?> Missing = new(Probe);

    /// <summary>Skips the test unless python3 imports torch.</summary>
    public static void SkipIfMissing() =>
        Skip.If(Missing.Value is not null, $"{Missing.Value} (build/install-deps.sh installs python3-torch)");

    /// <summary>test/Osprey.Tests/Interop/<paramref name="name"/>.</summary>
    public static string Script(string name) => Path.Combine(DataTestFiles.RepoRoot, "test", "Osprey.Tests", "Interop", name);

    /// <summary>Runs python3 with the arguments; returns stdout, or fails the test with stderr.</summary>
    public static string Run(params string[] arguments)
    {
        var (code, output, error) = RunRaw(arguments);
        Assert.True(code == 0, $"python3 {string.Join(' ', arguments)} exited {code}:\n{error}\n{output}");
        return output;
    }

    private static (int Code, string Output, string Error) RunRaw(params string[] arguments)
    {
        var start = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        start.Environment.Remove("PYTHONPATH");
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output, error.Result);
    }

    private static string? Probe()
    {
        if (!File.Exists(Python)) return $"{Python} is not installed";
        try
        {
            var (code, _, error) = RunRaw("-c", "import torch");
            return code == 0 ? null : $"{Python} cannot import torch: {error.Trim().Split('\n').LastOrDefault()}";
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return $"{Python} does not run: {e.Message}";
        }
    }
}

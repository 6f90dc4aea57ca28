using System.Diagnostics;

namespace Osprey.Tuning;

/// <summary>
/// One launch of a trial: its process (the trial itself, or srun / mpirun running it), its output appended to the trial's
/// <c>train.log</c>, and its lifeline: the process's standard input, a pipe the tuner holds open. The trial
/// (<c>osprey tune-trial</c>) ends itself, and its children, as soon as the pipe closes: when the tuner stops it
/// (<see cref="Stop"/>) or when the tuner dies, however it dies (the kernel closes the pipe). srun and mpirun forward
/// standard input, and its end, to the trial.
/// </summary>
public sealed class TrialProcess : IDisposable
{
    readonly Process _process;
    readonly StreamWriter _log;
    readonly Lock _gate = new();

    TrialProcess(Process process, StreamWriter log) => (_process, _log) = (process, log);

    /// <summary>The process id (of srun or mpirun when they launch the trial).</summary>
    public int Id => _process.Id;

    /// <summary>True once the process has exited.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>The exit code (after <see cref="HasExited"/>).</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Starts <paramref name="command"/> in <paramref name="workingDirectory"/>, its output appended to
    /// <paramref name="logPath"/>.</summary>
    /// <exception cref="System.ComponentModel.Win32Exception">The executable cannot be started.</exception>
    public static TrialProcess Start(TrialCommand command, string workingDirectory, string logPath)
    {
        var info = new ProcessStartInfo(command.Executable)
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
            UseShellExecute = false, WorkingDirectory = workingDirectory,
        };
        foreach (string argument in command.Arguments) info.ArgumentList.Add(argument);
        foreach (var (name, value) in command.Environment)
        {
            if (value is null) info.Environment.Remove(name);
            else info.Environment[name] = value;
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(logPath))!);
        var log = new StreamWriter(new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        log.WriteLine($"# {DateTimeOffset.Now:O} {command.Executable} {string.Join(' ', command.Arguments)}");
        var process = new Process { StartInfo = info };
        var trial = new TrialProcess(process, log);
        process.OutputDataReceived += (_, e) => trial.Append(e.Data);
        process.ErrorDataReceived += (_, e) => trial.Append(e.Data);
        try
        {
            process.Start();
        }
        catch
        {
            trial.Dispose();
            throw;
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return trial;
    }

    /// <summary>Asks the trial to end now: closes its lifeline.</summary>
    public void Stop()
    {
        try
        {
            _process.StandardInput.Close();
        }
        catch (IOException) { }            // already gone
        catch (InvalidOperationException) { }
    }

    /// <summary>Kills the process and its children (a trial that did not end after <see cref="Stop"/>).</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException) { } // exited meanwhile
    }

    /// <summary>Waits up to <paramref name="timeout"/> for the exit and for its output to be written.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout)) return false;
        _process.WaitForExit(); // drains the output readers
        return true;
    }

    /// <summary>
    /// Ends what a killed tuner may have left of a trial (its lifeline normally ends it first; a job step or a remote
    /// host may take longer): process <paramref name="id"/>, when it still runs on this machine as that trial, a
    /// <c>tune-trial</c> whose arguments name its run folder.
    /// </summary>
    public static void EndLeftover(int? id, string runDirectory)
    {
        if (id is not { } pid) return;
        string[] arguments;
        try
        {
            arguments = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0');
        }
        catch (IOException)
        {
            return;                                        // gone (or not Linux)
        }
        catch (UnauthorizedAccessException)
        {
            return;
        }
        bool same = arguments.Contains("tune-trial") && (arguments.Contains($"name={Path.GetFileName(runDirectory)}")
            && arguments.Contains($"project={Path.GetDirectoryName(runDirectory)}")
            || arguments.Any(a => a.StartsWith($"resume={runDirectory}{Path.DirectorySeparatorChar}", StringComparison.Ordinal)));
        if (!same) return;
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill(entireProcessTree: true);
            process.WaitForExit(TimeSpan.FromSeconds(15));
        }
        catch (ArgumentException) { }                      // exited meanwhile
        catch (InvalidOperationException) { }
    }

    void Append(string? line)
    {
        if (line is null) return;
        lock (_gate)
        {
            try
            {
                _log.WriteLine(line);
            }
            catch (ObjectDisposedException) { }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _process.Dispose();
        lock (_gate) _log.Dispose();
    }
}

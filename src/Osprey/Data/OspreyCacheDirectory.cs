namespace Osprey.Data;

/// <summary>Where Osprey keeps its own caches: <c>$OSPREY_CACHE</c>, else <c>$XDG_CACHE_HOME/osprey</c>, else <c>~/.cache/osprey</c>.</summary>
public static class OspreyCacheDirectory
{
    /// <summary>The root cache folder (not created).</summary>
    public static string Root
    {
        get
        {
            var explicitDir = Environment.GetEnvironmentVariable("OSPREY_CACHE");
            if (!string.IsNullOrWhiteSpace(explicitDir)) return Path.GetFullPath(explicitDir);
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            if (!string.IsNullOrWhiteSpace(xdg)) return Path.Combine(Path.GetFullPath(xdg), "osprey");
            var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            if (string.IsNullOrEmpty(home)) home = Path.GetTempPath();
            return Path.Combine(home, ".cache", "osprey");
        }
    }

    /// <summary>True when files may be written into <paramref name="directory"/>: it exists, has a write permission bit
    /// (so a read-only tree stays untouched even for root) and a probe file can be created and removed.</summary>
    public static bool IsWritable(string directory)
    {
        try
        {
            if (!Directory.Exists(directory)) return false;
            if (!OperatingSystem.IsWindows())
            {
                var mode = File.GetUnixFileMode(directory);
                const UnixFileMode anyWrite = UnixFileMode.UserWrite | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite;
                if ((mode & anyWrite) == 0) return false;
            }
            var probe = Path.Combine(directory, $".osprey-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
            using (File.Create(probe, 1, FileOptions.DeleteOnClose)) { }
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}

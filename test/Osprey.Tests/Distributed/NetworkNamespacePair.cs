using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Osprey.Tests.Distributed;

/// <summary>
/// Two "machines" on this host: network namespaces A and B joined by one veth pair (A 10.213.7.1/24, B 10.213.7.2/24,
/// loopback up in each, no other interface), so that a process in one reaches the other only over that link. The
/// filesystem is shared (like NFS between cluster nodes). mpirun runs in A with a hostfile naming both addresses;
/// OpenMPI's ssh agent is replaced by a script that runs the remote daemon inside B with a clean environment (as ssh
/// would). Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and iproute2's <c>ip</c>. Dispose deletes both namespaces (the veth goes with
/// them) and ends any process the test left inside them.
/// </summary>
internal sealed class NetworkNamespacePair : IDisposable
{
    public const string AddressA = "10.213.7.1", AddressB = "10.213.7.2", Subnet = "10.213.7.0/24";
    const string Prefix = "osprey-test-";

    public string NameA { get; }
    public string NameB { get; }
    public string VethA { get; }
    public string VethB { get; }
    readonly string folder;
    bool created;

    NetworkNamespacePair(string folder)
    {
        string id = $"{Environment.ProcessId}-{Guid.NewGuid():N}"[..^24];   // pid, then 8 hex digits
        NameA = $"{Prefix}{id}-a";
        NameB = $"{Prefix}{id}-b";
        string tag = id[^6..];
        (VethA, VethB) = ($"osp{tag}a", $"osp{tag}b");                    // interface names: at most 15 characters
        this.folder = folder;
    }

    /// <summary>Creates the namespaces, the link and the launch scripts in <paramref name="folder"/>.</summary>
    public static NetworkNamespacePair Create(string folder)
    {
        RemoveStale();
        var pair = new NetworkNamespacePair(folder);
        try
        {
            pair.created = true;
            var add = Ip("netns", "add", pair.NameA);
            Assert.True(add.ExitCode == 0,
                $"cannot create a network namespace (`ip netns add` exit {add.ExitCode}: {add.Error.Trim()}); this test needs root " +
                "(CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2 (build/install-deps.sh installs it)");
            Check(Ip("netns", "add", pair.NameB));
            // Both ends are created inside their namespaces: the host's own network never sees the link.
            Check(Ip("link", "add", pair.VethA, "netns", pair.NameA, "type", "veth", "peer", "name", pair.VethB, "netns", pair.NameB));
            foreach (var (ns, veth, address) in new[] { (pair.NameA, pair.VethA, AddressA), (pair.NameB, pair.VethB, AddressB) })
            {
                Check(Ip("-n", ns, "addr", "add", $"{address}/24", "dev", veth));
                Check(Ip("-n", ns, "link", "set", "lo", "up"));
                Check(Ip("-n", ns, "link", "set", veth, "up"));
            }
            pair.WriteScripts();
            return pair;
        }
        catch
        {
            pair.Dispose();
            throw;
        }
    }

    string Agent => Path.Combine(folder, "netns-agent.sh");
    string HostFile => Path.Combine(folder, "hostfile");
    string RankScript => Path.Combine(folder, "netns-rank.sh");

    void WriteScripts()
    {
        File.WriteAllText(HostFile, $"{AddressA} slots=1\n{AddressB} slots=1\n");
        // OpenMPI calls its rsh agent as `agent <host> <orted command…>` and, like ssh, expects the command to run there.
        File.WriteAllText(Agent, $"""
            #!/bin/sh
            host=$1; shift
            case "$host" in
              {AddressA}) ns={NameA} ;;
              {AddressB}) ns={NameB} ;;
              *) echo "netns agent: unknown host $host" >&2; exit 255 ;;
            esac
            exec ip netns exec "$ns" env -i PATH="$PATH" HOME="$HOME" sh -c "$*"

            """);
        // Each rank records its network namespace and OpenMPI's view of its node, then becomes the rank command.
        File.WriteAllText(RankScript, """
            #!/bin/sh
            report=$1; shift
            printf '%s %s %s\n' "$(readlink /proc/self/ns/net)" "$OMPI_COMM_WORLD_LOCAL_RANK" "$OMPI_COMM_WORLD_LOCAL_SIZE" \
              > "$report/rank$OMPI_COMM_WORLD_RANK.netns"
            exec "$@"

            """);
        foreach (string script in new[] { Agent, RankScript })
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    /// <summary>
    /// mpirun in namespace A: one rank per "machine" (rank 0 in A, rank 1 in B), TCP only and only on the link's subnet.
    /// Each rank writes rank&lt;R&gt;.netns into <paramref name="report"/>. <paramref name="environment"/> is set for mpirun
    /// and passed on to every rank with <c>-x</c> (the remote daemon starts with a clean environment, as over ssh).
    /// </summary>
    public ProcessOutput Mpirun(string report, IEnumerable<string> rankCommand, IReadOnlyDictionary<string, string> environment,
        TimeSpan timeout)
    {
        Directory.CreateDirectory(report);
        var arguments = new List<string>
        {
            "netns", "exec", NameA, LocalLauncherMpirun(), "--allow-run-as-root", "--hostfile", HostFile, "--map-by", "node", "-np", "2",
            "--mca", "plm_rsh_agent", Agent, "--mca", "btl", "tcp,self",
            "--mca", "btl_tcp_if_include", Subnet, "--mca", "oob_tcp_if_include", Subnet,
        };
        foreach (string name in environment.Keys) arguments.AddRange(new[] { "-x", name });
        arguments.AddRange(new[] { RankScript, report });
        arguments.AddRange(rankCommand);
        return Run("ip", arguments, timeout, environment);
    }

    static string LocalLauncherMpirun()
    {
        WorkerRunner.RequireMpirun();
        return Osprey.Distributed.LocalLauncher.FindMpirun()!;
    }

    /// <summary>The inode of a namespace, as /proc/PID/ns/net names it (<c>net:[inode]</c>).</summary>
    public string NamespaceId(string ns) => Check(Ip("netns", "exec", ns, "readlink", "/proc/self/ns/net")).Output.Trim();

    /// <summary>Interface names in a namespace.</summary>
    public string[] Interfaces(string ns) =>
        Json(Check(Ip("-n", ns, "-j", "link", "show")).Output).EnumerateArray().Select(e => e.GetProperty("ifname").GetString()!).ToArray();

    /// <summary>Bytes received and sent on a veth end so far.</summary>
    public (long Received, long Sent) Traffic(string ns, string veth)
    {
        JsonElement stats = Json(Check(Ip("-n", ns, "-j", "-s", "link", "show", "dev", veth)).Output)[0].GetProperty("stats64");
        return (stats.GetProperty("rx").GetProperty("bytes").GetInt64(), stats.GetProperty("tx").GetProperty("bytes").GetInt64());
    }

    public void Dispose()
    {
        if (!created) return;
        created = false;
        foreach (string ns in new[] { NameA, NameB }) Delete(ns);
    }

    // Ends what the test left running inside the namespace (a rank of a failed run), then deletes it (and its veth end).
    static void Delete(string ns)
    {
        var pids = Ip("netns", "pids", ns);
        foreach (string line in pids.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(line, NumberStyles.Integer, CultureInfo.InvariantCulture, out int pid)) continue;
            try
            {
                using var process = Process.GetProcessById(pid);
                process.Kill(entireProcessTree: true);
            }
            catch (ArgumentException) { }            // already gone
            catch (InvalidOperationException) { }
        }
        Ip("netns", "del", ns);
    }

    // Namespaces of earlier test processes that died before their cleanup (name: osprey-test-<pid>-<id>-a|b).
    static void RemoveStale()
    {
        var list = Ip("netns", "list");
        if (list.ExitCode != 0) return;
        foreach (string line in list.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string name = line.Split(' ')[0];
            if (!name.StartsWith(Prefix, StringComparison.Ordinal)) continue;
            string pid = name[Prefix.Length..].Split('-')[0];
            if (!Directory.Exists($"/proc/{pid}")) Delete(name);
        }
    }

    static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement;

    static ProcessOutput Check(ProcessOutput result)
    {
        Assert.True(result.ExitCode == 0, $"`{result.Command}` failed (exit {result.ExitCode}): {result.Error.Trim()}");
        return result;
    }

    static ProcessOutput Ip(params string[] arguments) => Run("ip", arguments, TimeSpan.FromSeconds(20));

    /// <summary>Runs a program to its end (killing its process tree after <paramref name="timeout"/>).</summary>
    public static ProcessOutput Run(string program, IEnumerable<string> arguments, TimeSpan timeout,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in arguments) info.ArgumentList.Add(argument);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) info.Environment[name] = value;
        string command = $"{program} {string.Join(' ', info.ArgumentList)}";
        Process process;
        try
        {
            process = Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Assert.Fail($"cannot run {program} ({e.Message}): install iproute2 and openmpi-bin (build/install-deps.sh)");
            throw;
        }
        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                return new ProcessOutput(command, 124, output.Result, error.Result + $"\n(killed after {timeout.TotalSeconds:0} s)");
            }
            process.WaitForExit();
            return new ProcessOutput(command, process.ExitCode, output.Result, error.Result);
        }
    }
}

/// <summary>A finished command: its line, exit code, standard output and standard error.</summary>
internal sealed record ProcessOutput(string Command, int ExitCode, string Output, string Error)
{
    public string Text => $"{Output}\n{Error}".Trim();
}

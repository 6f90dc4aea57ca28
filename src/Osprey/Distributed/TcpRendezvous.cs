using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Osprey.Distributed;

/// <summary>
/// Rank 0 hands a small fixed-size payload (the 128-byte NCCL unique id) to every other rank over TCP, for jobs that
/// are not started by mpirun. Rank 0 listens on <c>MASTER_PORT</c> (<see cref="Port"/>); the others connect to
/// <c>MASTER_ADDR</c> there, retrying until rank 0 is up or the timeout passes.
/// </summary>
/// <remarks>
/// Protocol (little-endian): the client sends <c>"OSPR", rank, world size, payload length</c> (int32 each);
/// rank 0 checks them against its own and answers <c>length, payload</c>, or <c>-1</c> on a mismatch.
/// note: blocks until every rank has connected (rank 0) or got the payload (others).
/// </remarks>
public static class TcpRendezvous
{
    static readonly byte[] Magic = "OSPR"u8.ToArray();

    /// <summary>Sets the rendezvous port (default: <c>MASTER_PORT</c>, or <c>MASTER_PORT + 1</c> under torchrun).</summary>
    public const string PortVariable = "OSPREY_RENDEZVOUS_PORT";

    /// <summary>Runs the rendezvous with the rank, world size and master address of <paramref name="environment"/>.</summary>
    public static byte[] Broadcast(byte[]? payload, int length, DistributedEnvironment environment, TimeSpan timeout) =>
        Broadcast(payload, length, environment.Rank, environment.WorldSize, environment.MasterAddress,
            Port(environment.MasterPort, Environment.GetEnvironmentVariable), timeout);

    /// <summary>
    /// The port rank 0 listens on: <see cref="PortVariable"/> when set; <c>MASTER_PORT + 1</c> under torchrun
    /// (<c>TORCHELASTIC_RUN_ID</c> set), whose agent already serves its own store on <c>MASTER_PORT</c>; else
    /// <c>MASTER_PORT</c> (Osprey's launcher, or torchrun-style variables set by hand).
    /// </summary>
    /// <exception cref="DistributedException"><see cref="PortVariable"/> is not a port.</exception>
    public static int Port(int masterPort, Func<string, string?> variable)
    {
        if (variable(PortVariable) is { Length: > 0 } text)
            return int.TryParse(text.Trim(), out int port) && port is > 0 and < 65536 ? port
                : throw new DistributedException($"{PortVariable}={text} is not a TCP port");
        return variable("TORCHELASTIC_RUN_ID") is { Length: > 0 } ? masterPort + 1 : masterPort;
    }

    /// <summary>
    /// Rank 0 passes <paramref name="payload"/> (exactly <paramref name="length"/> bytes) and gets it back once all
    /// <paramref name="worldSize"/> - 1 other ranks have received it; the other ranks pass null and get rank 0's payload.
    /// </summary>
    /// <exception cref="DistributedException">Nobody listens, a rank is missing, or the ranks disagree, within the timeout.</exception>
    public static byte[] Broadcast(byte[]? payload, int length, int rank, int worldSize, string masterAddress, int masterPort,
        TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in [0, {worldSize})");
        string host = Environment.MachineName;
        var deadline = Stopwatch.StartNew();
        if (rank == 0)
        {
            if (payload is null || payload.Length != length)
                throw new ArgumentException($"rank 0 must pass a payload of {length} bytes", nameof(payload));
            Serve(payload, worldSize, masterPort, timeout, deadline, host);
            return payload;
        }
        return Fetch(length, rank, worldSize, masterAddress, masterPort, timeout, deadline, host);
    }

    static void Serve(byte[] payload, int worldSize, int port, TimeSpan timeout, Stopwatch deadline, string host)
    {
        if (worldSize == 1) return;
        var listener = new TcpListener(IPAddress.Any, port);
        listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        try
        {
            listener.Start(worldSize);
        }
        catch (SocketException e)
        {
            throw new DistributedException(0, host, $"rendezvous: cannot listen on port {port} ({e.Message}); set MASTER_PORT to a free port", e);
        }
        var served = new HashSet<int>();
        try
        {
            while (served.Count < worldSize - 1)
            {
                TimeSpan left = timeout - deadline.Elapsed;
                if (left <= TimeSpan.Zero || !listener.Server.Poll(left, SelectMode.SelectRead))
                {
                    var missing = Enumerable.Range(1, worldSize - 1).Where(r => !served.Contains(r));
                    throw new DistributedException(0, host,
                        $"rendezvous on port {port} timed out after {timeout.TotalSeconds:0.#} s: rank(s) " +
                        $"{string.Join(", ", missing)} never connected");
                }
                using TcpClient client = listener.AcceptTcpClient();
                int clientRank = Answer(client, payload, worldSize, timeout - deadline.Elapsed);
                if (clientRank >= 0) served.Add(clientRank);
            }
        }
        finally
        {
            listener.Stop();
        }
    }

    // Reads one client's hello and sends the payload; returns its rank, or -1 for a stray or mismatched connection.
    static int Answer(TcpClient client, byte[] payload, int worldSize, TimeSpan left)
    {
        int milliseconds = (int)Math.Clamp(left.TotalMilliseconds, 1, int.MaxValue);
        client.ReceiveTimeout = client.SendTimeout = milliseconds;
        try
        {
            NetworkStream stream = client.GetStream();
            Span<byte> hello = stackalloc byte[16];
            stream.ReadExactly(hello);
            int rank = BinaryPrimitives.ReadInt32LittleEndian(hello[4..]);
            int size = BinaryPrimitives.ReadInt32LittleEndian(hello[8..]);
            int length = BinaryPrimitives.ReadInt32LittleEndian(hello[12..]);
            bool valid = hello[..4].SequenceEqual(Magic) && size == worldSize && length == payload.Length && rank > 0 && rank < worldSize;
            Span<byte> header = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(header, valid ? payload.Length : -1);
            stream.Write(header);
            if (!valid) return -1;
            stream.Write(payload);
            stream.Flush();
            return rank;
        }
        catch (IOException)
        {
            return -1; // a port scanner or a rank that gave up: ignore, keep waiting for the real ones
        }
    }

    static byte[] Fetch(int length, int rank, int worldSize, string address, int port, TimeSpan timeout, Stopwatch deadline, string host)
    {
        Exception? last = null;
        while (deadline.Elapsed < timeout)
        {
            TimeSpan left = timeout - deadline.Elapsed;
            using var client = new TcpClient();
            try
            {
                using var connectCancel = new CancellationTokenSource(left);
                client.ConnectAsync(address, port, connectCancel.Token).AsTask().GetAwaiter().GetResult();
                int milliseconds = (int)Math.Clamp((timeout - deadline.Elapsed).TotalMilliseconds, 1, int.MaxValue);
                client.ReceiveTimeout = client.SendTimeout = milliseconds;
                NetworkStream stream = client.GetStream();
                Span<byte> hello = stackalloc byte[16];
                Magic.CopyTo(hello);
                BinaryPrimitives.WriteInt32LittleEndian(hello[4..], rank);
                BinaryPrimitives.WriteInt32LittleEndian(hello[8..], worldSize);
                BinaryPrimitives.WriteInt32LittleEndian(hello[12..], length);
                stream.Write(hello);
                Span<byte> header = stackalloc byte[4];
                stream.ReadExactly(header);
                int answered = BinaryPrimitives.ReadInt32LittleEndian(header);
                if (answered != length)
                    throw new DistributedException(rank, host,
                        $"rendezvous: rank 0 at {address}:{port} refused rank {rank} of world size {worldSize} " +
                        "(it runs a different world size or payload)");
                byte[] payload = new byte[length];
                stream.ReadExactly(payload);
                return payload;
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
            {
                last = e;
                Thread.Sleep(TimeSpan.FromMilliseconds(Math.Min(100, Math.Max(1, (timeout - deadline.Elapsed).TotalMilliseconds))));
            }
        }
        throw new DistributedException(rank, host,
            $"rendezvous: no answer from rank 0 at {address}:{port} within {timeout.TotalSeconds:0.#} s " +
            $"(is rank 0 running and MASTER_ADDR/MASTER_PORT right?){(last is null ? "" : $"; last error: {last.Message}")}", last);
    }
}
